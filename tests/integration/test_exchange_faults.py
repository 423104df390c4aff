"""Crash tests on a real nats-server: nothing lost, nothing processed twice.

10,000 messages go to a partner while nats-server is SIGKILLed three times and the relay
process (`justice exchange relay`) twice, each restarted. The partner SDK must see every
envelope id exactly once and every delivery must end DELIVERED.
"""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from justice.app import Application, build
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.exchange.message import OutgoingMessage
from justice.exchange.model import DeliveryState
from justice.exchange.store import DeliveryRow, ExchangeTransaction
from justice.partner.client import Answer, ProcessedLog, Received, listen
from tests.exchange_env import (
    exchange_settings,
    nats_with_partners,
    partner_record,
    partner_side,
    platform_process,
)

PARTNER = "prosecutor-antwerp"
TOTAL = 10_000
BATCH = 250


@pytest.fixture
async def platform(pki: DevPki, tmp_path: Path) -> AsyncIterator[tuple[Application, NatsServer]]:
    nats = nats_with_partners(tmp_path / "nats")
    nats.start()
    nats.wait_ready()
    settings = exchange_settings(
        pki,
        nats,
        tmp_path / "state",
        f"sqlite+aiosqlite:///{tmp_path / 'justice.db'}",
        exchange={"relay": False},  # the relay runs in its own process, which the test kills
    )
    app = await build(settings)
    try:
        assert app.exchange is not None
        await app.exchange.service.create_partner(
            partner_record(pki, PARTNER, receive=frozenset({"fault_notice"}))
        )
        yield app, nats
    finally:
        await app.close()
        nats.stop()


async def _delivered(app: Application) -> int:
    async with ExchangeTransaction(app.database.sessions) as tx:
        query = select(func.count()).where(
            DeliveryRow.state == DeliveryState.DELIVERED.value,  # type: ignore[arg-type]
            DeliveryRow.message_type == "fault_notice",  # type: ignore[arg-type]
        )
        return int((await tx.session.exec(query)).one()[0])


async def test_ten_thousand_messages_survive_broker_and_relay_kills(
    platform: tuple[Application, NatsServer], pki: DevPki, tmp_path: Path
) -> None:
    app, nats = platform
    relay_log = tmp_path / "relay.log"
    relay = platform_process("relay", app.settings, nats, relay_log)
    seen: collections.Counter[str] = collections.Counter()

    async def handle(received: Received) -> Answer:
        seen[received.id] += 1
        return Answer.accept()

    client = await partner_side(pki).connect(nats, PARTNER)
    stop = asyncio.Event()
    listener = asyncio.create_task(listen(client, handle, ProcessedLog(), stop))

    async def produce() -> None:
        # The domain's path: outbox rows committed in batches, as ReportService.submit does.
        for start in range(0, TOTAL, BATCH):
            async with ExchangeTransaction(app.database.sessions) as tx:
                for i in range(start, start + BATCH):
                    await tx.outbox.add(
                        OutgoingMessage(PARTNER, "fault_notice", f"notice {i}".encode(), f"n/{i}")
                    )
                await tx.commit()
            await asyncio.sleep(0.05)

    chaos = random.Random(20260426)
    kills = {"nats": 0, "relay": 0}

    async def inject() -> None:
        nonlocal relay
        for victim in chaos.sample(["nats", "nats", "nats", "relay", "relay"], 5):
            await asyncio.sleep(chaos.uniform(0.8, 2.5))
            if victim == "nats":
                await asyncio.to_thread(nats.kill)
                await asyncio.sleep(chaos.uniform(0.2, 1.0))
                await asyncio.to_thread(nats.start)
                await asyncio.to_thread(nats.wait_ready)
            else:
                relay.kill()  # SIGKILL, by PID: only the process this test started
                relay.wait()
                await asyncio.sleep(chaos.uniform(0.1, 0.5))
                relay = platform_process("relay", app.settings, nats, relay_log)
            kills[victim] += 1

    try:
        await asyncio.gather(produce(), inject())
        deadline = asyncio.get_running_loop().time() + 120
        while len(seen) < TOTAL or await _delivered(app) < TOTAL:
            assert asyncio.get_running_loop().time() < deadline, (
                f"partner saw {len(seen)}, delivered {await _delivered(app)}\n"
                + relay_log.read_text()[-3000:]
            )
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await listener
        await client.close()
        relay.terminate()
        relay.wait(timeout=30)

    assert kills == {"nats": 3, "relay": 2}
    assert len(seen) == TOTAL
    assert max(seen.values()) == 1, "a message was handled twice"
    assert await _delivered(app) == TOTAL
