"""The exchange assembled from the platform's parts: its admin service and gRPC mount, the
dispatcher each domain registers its inbound handlers with, and, with a bus, the relay and
the inbound consumer. The exchange knows no domain."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from justice.exchange.api import ExchangeApi, own_deliveries_scope
from justice.exchange.envelope import EnvelopeSigner
from justice.exchange.inbound import Dispatcher, InboundConsumer, InboundProcessor
from justice.exchange.registry import PartnerDirectory
from justice.exchange.relay import Relay, RelaySettings
from justice.exchange.service import ExchangeService
from justice.exchange.store import (
    OUTBOX_CHANNEL,
    OUTBOX_WRITTEN,
    ExchangeTransaction,
    InboundWrites,
)
from justice.exchange.stream_erasure import StreamErasure
from justice.exchange.v1 import exchange_pb2, exchange_pb2_grpc
from justice.exchange.workers import ExchangeWorkers, NatsLink
from justice.platform.bus import Bus
from justice.platform.config import ExchangeSettings
from justice.platform.db import Database
from justice.platform.notify import Listener
from justice.platform.notify import supported as notifications_supported
from justice.platform.server import Mount
from justice.signing.keystore import KeyStore


@dataclass(frozen=True)
class ExchangeComponent:
    service: ExchangeService
    mount: Mount
    # Each domain registers its handlers here before the workers start.
    dispatcher: Dispatcher
    # The relay and the inbound consumer; None without a bus or when both are off.
    workers: ExchangeWorkers | None
    # Deletes the streams' copies of messages a domain erases; None without a bus.
    stream_erasure: StreamErasure | None = None


def build(
    settings: ExchangeSettings,
    database: Database,
    bus: Bus | None,
    envelope_keys: KeyStore,
    clock: Callable[[], datetime],
    *,
    background: bool = True,
) -> ExchangeComponent:
    """The relay runs when `relay` is set, the consumer when `inbound` is;
    neither without `background` (a `--workers` process other than the first)."""

    def uow() -> ExchangeTransaction:
        return ExchangeTransaction(database.sessions)

    running = background and bus is not None
    # The relay reads, marks and looks partners up through a small pool of its own: queued
    # behind requests waiting for the shared pool, partners' messages stalled under load.
    relay_database = Database(database.url, pool_size=2) if running and settings.relay else None

    def relay_uow() -> ExchangeTransaction:
        return ExchangeTransaction((relay_database or database).sessions)

    directory = PartnerDirectory(relay_uow)
    dispatcher = Dispatcher()
    workers = None
    if running and bus is not None and (settings.relay or settings.inbound):

        async def partner_ids() -> list[str]:
            async with uow() as tx:
                return [p.id for p in await tx.partners.list(10_000, "")]

        relay = None
        listener = None
        if settings.relay:
            # Other processes' outbox commits wake the relay on PostgreSQL; the poll stays
            # only as a safety net there.
            if notifications_supported(database.url):
                listener = Listener(database.url, OUTBOX_CHANNEL)
            # The platform's own P-256 envelope key, loaded once.
            key = envelope_keys.identity(settings.platform_id).key
            relay = Relay(
                relay_uow,
                (relay_database or database).group,
                EnvelopeSigner(settings.platform_id, key),
                directory,
                RelaySettings(
                    batch=settings.relay_batch,
                    receipt_deadline=timedelta(seconds=settings.receipt_deadline_seconds),
                    idle_seconds=5.0 if listener else RelaySettings.idle_seconds,
                    lease=timedelta(seconds=settings.relay_lease_seconds),
                ),
                clock,
            )
            database.on_commit(OUTBOX_WRITTEN, relay.nudge)
        consumer = None
        if settings.inbound:
            processor = InboundProcessor(
                uow,
                InboundWrites(database.group),
                directory,
                dispatcher,
                settings.platform_id,
                clock,
            )
            consumer = InboundConsumer(
                processor, batch=settings.inbound_batch, concurrency=settings.inbound_concurrency
            )
        link = NatsLink(bus, partner_ids)
        workers = ExchangeWorkers(link, relay, consumer, listener, relay_database)
    service = ExchangeService(
        uow,
        directory,
        clock,
        partner_added=workers.link.ensure_partner if workers else None,
        wake_relay=workers.relay.nudge if workers and workers.relay else None,
    )
    mount = Mount.of(
        exchange_pb2.DESCRIPTOR.services_by_name["ExchangeService"],
        exchange_pb2_grpc.add_ExchangeServiceServicer_to_server,
        ExchangeApi(service, own_deliveries_scope),
    )
    erasure = StreamErasure(bus.jetstream) if bus is not None else None
    return ExchangeComponent(service, mount, dispatcher, workers, erasure)
