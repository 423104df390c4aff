"""Two relays on one PostgreSQL database publish every outbox row exactly once.

Each relay has its own connection pool, as two `justice exchange relay` processes would. The
relays' own publish counts add up to the number of rows (a row published by both would be
counted twice, even though JetStream's duplicate window would then hide it from the stream),
the stream holds each message id once, and no row is left behind. A claim whose relay died
is taken over once its lease ends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.exchange.bus import INBOX_STREAM
from justice.exchange.envelope import EnvelopeSigner
from justice.exchange.message import OutgoingMessage
from justice.exchange.model import DeliveryState
from justice.exchange.registry import PartnerDirectory
from justice.exchange.relay import Relay, RelaySettings
from justice.exchange.store import ExchangeTransaction, RelayWrites
from justice.exchange.workers import ExchangeWorkers, NatsLink
from justice.platform.bus import Bus, NatsCredentials
from justice.platform.db import Database
from tests.eventually import eventually
from tests.exchange_env import partner_record

PARTNER = "prosecutor-antwerp"
ROWS = 400


@pytest.fixture(autouse=True)
async def partner(database: Database, pki: DevPki) -> None:
    async with _uow(database) as tx:
        if await tx.partners.get(PARTNER) is None:
            await tx.partners.add(partner_record(pki, PARTNER))
        await tx.commit()


def _uow(database: Database) -> ExchangeTransaction:
    return ExchangeTransaction(database.sessions)


async def _write(database: Database, count: int, prefix: str) -> None:
    for start in range(0, count, 500):
        async with _uow(database) as tx:
            for i in range(start, min(start + 500, count)):
                await tx.outbox.add(
                    OutgoingMessage(PARTNER, "report_submitted", b"r", f"{prefix}/{i}")
                )
            await tx.commit()


def _relay(database_url: str, bus: Bus, batch: int) -> ExchangeWorkers:
    """A relay of its own: its own pool on the database, its own NATS link."""
    database = Database(database_url)

    def uow() -> ExchangeTransaction:
        return _uow(database)

    relay = Relay(
        uow,
        database.group,
        EnvelopeSigner("justice-server", ec.generate_private_key(ec.SECP256R1())),
        PartnerDirectory(uow),
        # Small batches, polled often: the two relays' claims interleave many times.
        RelaySettings(batch=batch, poll_seconds=0.001, idle_seconds=0.05),
    )

    async def partners() -> list[str]:
        return [PARTNER]

    return ExchangeWorkers(NatsLink(bus, partners), relay, None, None, database)


async def _stream_ids(bus: Bus) -> list[str]:
    """The Nats-Msg-Id of every message in the partners' inbox stream."""
    js = await bus.jetstream()
    info = await js.stream_info(INBOX_STREAM)
    ids = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        message = await js.get_msg(INBOX_STREAM, seq)
        ids.append((message.headers or {}).get("Nats-Msg-Id", ""))
    return ids


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_relays_publish_each_row_once(
    database: Database, database_url: str, nats_server: NatsServer
) -> None:
    await _write(database, ROWS, "two")
    buses = [Bus(NatsCredentials(nats_server.url)) for _ in range(2)]
    relays = [_relay(database_url, bus, batch=10) for bus in buses]
    for workers in relays:
        workers.start()
    try:

        async def drained() -> bool:
            async with _uow(database) as tx:
                count, _ = await tx.relay.backlog()
            return count == 0

        await eventually(drained, within=60, what="the outbox drained by two relays")
        for workers in relays:
            assert workers.relay is not None
            await workers.relay.settled()
        published = [w.relay.counters.published for w in relays if w.relay is not None]
        # Both took part, and together they published each row once.
        assert all(published), published
        assert sum(published) == ROWS
        async with _uow(database) as tx:
            assert await tx.deliveries.count(DeliveryState.PUBLISHED) == ROWS
            assert await tx.deliveries.count(DeliveryState.PENDING) == 0
        ids = await _stream_ids(buses[0])
        assert len(ids) == ROWS
        assert len(set(ids)) == ROWS
    finally:
        for workers in relays:
            await workers.stop()
        for bus in buses:
            await bus.close()


async def test_a_dead_relays_claim_is_taken_over_when_its_lease_ends(
    database: Database,
) -> None:
    await _write(database, 3, "lease")
    now = datetime.now(UTC)
    lease = timedelta(seconds=30)
    relays = RelayWrites(database.group)
    dead = await relays.claim("dead-relay", 10, now, now + lease)
    assert len(dead) >= 3
    # While the lease lasts, another relay finds nothing to take.
    assert await relays.claim("live-relay", 10, now, now + lease) == []
    # After it, the rows are the live relay's, oldest first.
    later = now + lease + timedelta(seconds=1)
    taken = await relays.claim("live-relay", 10, later, later + lease)
    assert [m.id for m in taken] == [m.id for m in dead]


async def test_a_released_claim_is_free_at_once(database: Database) -> None:
    await _write(database, 2, "release")
    now = datetime.now(UTC)
    lease = timedelta(seconds=30)
    relays = RelayWrites(database.group)
    held = await relays.claim("stopping-relay", 10, now, now + lease)
    async with _uow(database) as tx:
        await tx.relay.release("stopping-relay")
        await tx.commit()
    taken = await relays.claim("other-relay", 10, now, now + lease)
    assert [m.id for m in taken] == [m.id for m in held]
