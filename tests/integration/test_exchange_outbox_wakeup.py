"""On PostgreSQL an outbox row committed by another process wakes the relay (LISTEN/NOTIFY).

The relay here polls once a minute, so only the notification can make it publish within
seconds of the other process's commit.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from justice.devstack.nats import NatsServer
from justice.exchange.envelope import EnvelopeSigner
from justice.exchange.model import DeliveryState
from justice.exchange.registry import PartnerDirectory
from justice.exchange.relay import Relay, RelaySettings
from justice.exchange.store import OUTBOX_CHANNEL, ExchangeTransaction
from justice.exchange.workers import ExchangeWorkers, NatsLink
from justice.platform.bus import Bus, NatsCredentials
from justice.platform.db import Database
from justice.platform.notify import Listener

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

# What another process (an import job, a second server) does: write and commit, nothing else.
WRITER = """
import asyncio, sys
from justice.exchange.message import OutgoingMessage
from justice.exchange.store import ExchangeTransaction
from justice.platform.db import Database

async def main(url: str, ref: str) -> None:
    database = Database(url)
    async with ExchangeTransaction(database.sessions) as tx:
        await tx.outbox.add(OutgoingMessage("nobody-registered", "notice", b"x", ref))
        await tx.commit()
    await database.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.migrate()
    try:
        yield database
    finally:
        await database.close()


def _uow(database: Database) -> ExchangeTransaction:
    return ExchangeTransaction(database.sessions)


async def _write_elsewhere(url: str, ref: str) -> float:
    """Commit one outbox row from a separate Python process; returns when it had committed."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, url, ref)
    assert await process.wait() == 0
    return time.monotonic()


async def _refused(database: Database) -> int:
    # Nobody is registered, so the relay settles each row it handles as REJECTED.
    async with _uow(database) as tx:
        return await tx.deliveries.count(DeliveryState.REJECTED)


async def _handled_within(database: Database, before: int, seconds: float) -> float | None:
    """Seconds until the relay has handled one more row, or None."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if await _refused(database) > before:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    return None


def _workers(database: Database, bus: Bus, listener: Listener | None) -> ExchangeWorkers:
    relay = Relay(
        lambda: _uow(database),
        database.group,
        EnvelopeSigner("justice-server", ec.generate_private_key(ec.SECP256R1())),
        PartnerDirectory(lambda: _uow(database)),
        RelaySettings(poll_seconds=60.0, idle_seconds=60.0),
    )

    async def no_partners() -> list[str]:
        return []

    return ExchangeWorkers(NatsLink(bus, no_partners), relay, None, listener)


async def test_another_processs_commit_wakes_the_relay(
    database: Database, database_url: str, nats_server: NatsServer
) -> None:
    listener = Listener(database_url, OUTBOX_CHANNEL)
    bus = Bus(NatsCredentials(nats_server.url))
    workers = _workers(database, bus, listener)
    workers.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
        await asyncio.sleep(0.5)  # the relay's first passes are over; it now waits a minute
        before = await _refused(database)
        await _write_elsewhere(database_url, "n/1")
        waited = await _handled_within(database, before, 5.0)
        assert waited is not None, "the relay did not wake for another process's commit"
        assert waited < 2.0
    finally:
        await workers.stop()
        await bus.close()


async def test_without_the_listener_the_relay_sleeps_through_it(
    database: Database, database_url: str, nats_server: NatsServer
) -> None:
    # The control: the same relay and commit without LISTEN: nothing happens for a minute.
    bus = Bus(NatsCredentials(nats_server.url))
    workers = _workers(database, bus, None)
    workers.start()
    try:
        await asyncio.sleep(0.5)
        before = await _refused(database)
        await _write_elsewhere(database_url, "n/2")
        assert await _handled_within(database, before, 2.0) is None
    finally:
        await workers.stop()
        await bus.close()
