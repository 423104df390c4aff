"""Custody's build function: the platform's shared parts in, the custody services, their gRPC
mount and their inbound handlers out. The composition root calls `build` and wires the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from justice.custody import chain
from justice.custody.api import Custody, CustodyApi
from justice.custody.disposition import DispositionService
from justice.custody.inbound import CustodyInbound
from justice.custody.integrity import IntegrityService
from justice.custody.inventory import InventoryService
from justice.custody.ledger import AlertSink, CustodyConfig, Ports, Verifier
from justice.custody.locations import LocationService
from justice.custody.model import Tolerance
from justice.custody.movements import MovementService
from justice.custody.service import CustodyService
from justice.custody.store import CustodyTransaction, SqlItemListing
from justice.custody.v1 import custody_pb2, custody_pb2_grpc
from justice.exchange.inbound import Dispatcher
from justice.exchange.store import ExchangeTransaction, newest_subject_ref
from justice.platform.config import Settings
from justice.platform.db import Database, PlainReads
from justice.platform.errors import JusticeError
from justice.platform.server import Mount
from justice.security.approvals import FourEyes
from justice.signing.keyed import KeyStoreSigner
from justice.signing.pades import PadesSigner

log = logging.getLogger(__name__)


class OutboxAnchors:
    """The newest chain head an item's outgoing messages carried (subject items/{id}@{n}:{hash})."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def newest(self, item: str) -> chain.Head | None:
        async with ExchangeTransaction(self._database.sessions) as tx:
            ref = await newest_subject_ref(tx.session, item)
        if ref is None:
            return None
        sequence, _, digest = ref.removeprefix(f"{item}@").partition(":")
        return chain.Head(int(sequence), digest)


@dataclass
class CustodyParts:
    custody: Custody
    mount: Mount
    inbound: CustodyInbound

    def register(self, dispatcher: Dispatcher) -> None:
        self.inbound.register(dispatcher)

    async def maintain(self, every_seconds: float) -> None:
        """Look for overdue check-outs now and then, until cancelled."""
        while True:
            with contextlib.suppress(JusticeError):
                await self.custody.inventories.sweep_overdue()
            await asyncio.sleep(every_seconds)


def config_of(settings: Settings) -> CustodyConfig:
    return CustodyConfig(
        tolerance=Tolerance(weight_grams=settings.custody.weight_tolerance_grams),
        notice_threshold=settings.custody.notice_threshold_eur,
        central_agency=settings.custody.central_agency,
        events_partner=settings.custody.events_partner or settings.reports.default_prosecutor,
        prosecutor=settings.reports.default_prosecutor,
        signer_id=settings.audit.signer,
    )


def build(
    database: Database,
    *,
    plain_reads: PlainReads,
    signer: KeyStoreSigner,
    verifier: Verifier,
    pdf_signer: PadesSigner,
    four_eyes: FourEyes,
    alerts: AlertSink,
    annotate: Callable[[str], None],
    clock: Callable[[], datetime],
    config: CustodyConfig,
) -> CustodyParts:
    """`alerts` is the platform's alert channel; `annotate` adds the chain head to the
    current call's audit record (the anchor outside the custody tables); `verifier` checks
    that a signed acceptance names its receiver; `plain_reads` serves ListItems' hot path."""
    ports = Ports(
        uow=lambda: CustodyTransaction(database.sessions),
        reads=lambda: CustodyTransaction(database.read_sessions),
        listing=SqlItemListing(plain_reads),
        four_eyes=four_eyes,
        signer=signer,
        verifier=verifier,
        pdf_signer=pdf_signer,
        anchors=OutboxAnchors(database),
        alerts=alerts,
        annotate=annotate,
        clock=clock,
        config=config,
    )
    custody = Custody(
        seizures=CustodyService(ports),
        movements=MovementService(ports),
        dispositions=DispositionService(ports),
        inventories=InventoryService(ports),
        integrity=IntegrityService(ports),
        locations=LocationService(ports),
    )
    api = CustodyApi(custody, clock)
    mount = Mount.of(
        custody_pb2.DESCRIPTOR.services_by_name["CustodyService"],
        custody_pb2_grpc.add_CustodyServiceServicer_to_server,
        api,
    )
    return CustodyParts(custody, mount, CustodyInbound(custody.dispositions))
