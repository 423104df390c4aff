"""A submitted report reaches the prosecutor over a real nats-server (per-partner users)
and comes back DELIVERED, then ACKNOWLEDGED, as the partner SDK's signed answers arrive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from justice.app import Application, build
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.exchange.model import DeliveryState
from justice.exchange.store import DeliveryQuery
from justice.partner.client import Answer, ProcessedLog, Received, listen
from justice.partner.simulator import ProsecutorSimulator
from justice.reports.model import ReportState
from tests.exchange_env import (
    exchange_settings,
    nats_with_partners,
    partner_record,
    partner_side,
    signed_report,
)

T = TypeVar("T")
PROSECUTOR = "prosecutor-antwerp"


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with nats_with_partners(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture
async def app(pki: DevPki, nats: NatsServer, tmp_path: Path) -> AsyncIterator[Application]:
    settings = exchange_settings(
        pki, nats, tmp_path / "state", f"sqlite+aiosqlite:///{tmp_path / 'justice.db'}"
    )
    application = await build(settings)
    assert application.exchange is not None
    await application.exchange.service.create_partner(partner_record(pki, PROSECUTOR))
    yield application
    await application.close()


async def eventually(probe: Callable[[], Awaitable[T | None]], within: float = 20.0) -> T:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def submitted_report(app: Application, recipient: str = PROSECUTOR) -> str:
    name = await signed_report(app)
    submitted = await app.reports.submit("officer-1001", name, recipient)
    return f"{submitted.name}@{submitted.version}"


async def test_report_is_delivered_then_acknowledged(
    app: Application, pki: DevPki, nats: NatsServer
) -> None:
    name = await submitted_report(app)
    client = await partner_side(pki).connect(nats, PROSECUTOR)
    simulator = ProsecutorSimulator(client)
    stop = asyncio.Event()
    task = asyncio.create_task(listen(client, simulator.handle, ProcessedLog(), stop))
    try:

        async def state() -> ReportState | None:
            report = await app.reports.get(name)
            return report.state if report.state is ReportState.ACKNOWLEDGED else None

        await eventually(state)
        assert simulator.acknowledged == [name]
        assert app.exchange is not None
        deliveries = await app.exchange.service.list_deliveries(
            DeliveryQuery(size=10, recipient=PROSECUTOR)
        )
        report_delivery = [d for d in deliveries if d.message_type == "report_submitted"]
        assert [d.state for d in report_delivery] == [DeliveryState.DELIVERED]
        assert report_delivery[0].subject_ref == name
        assert report_delivery[0].receipt
    finally:
        stop.set()
        await task
        await client.close()


async def test_partner_rejection_moves_report_to_rejected(
    app: Application, pki: DevPki, nats: NatsServer
) -> None:
    name = await submitted_report(app)
    client = await partner_side(pki).connect(nats, PROSECUTOR)

    async def refuse(received: Received) -> Answer:
        return Answer.reject("NOT_COMPETENT", "another district")

    stop = asyncio.Event()
    task = asyncio.create_task(listen(client, refuse, ProcessedLog(), stop))
    try:

        async def rejected() -> str | None:
            report = await app.reports.get(name)
            return report.rejection_reason if report.state is ReportState.REJECTED else None

        assert await eventually(rejected) == "NOT_COMPETENT: another district"
        exchange = app.exchange
        assert exchange is not None

        # The report settles first, the delivery in the exchange's own transaction after it.
        async def rejected_deliveries() -> list[str] | None:
            deliveries = await exchange.service.list_deliveries(
                DeliveryQuery(size=10, recipient=PROSECUTOR, state=DeliveryState.REJECTED)
            )
            return [d.reason for d in deliveries] or None

        assert await eventually(rejected_deliveries) == ["NOT_COMPETENT"]
    finally:
        stop.set()
        await task
        await client.close()
