"""A submitted report reaches the prosecutor over a real nats-server (per-partner users)
and comes back DELIVERED, then ACKNOWLEDGED, as the partner SDK's signed answers arrive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats import errors as nats_errors

from justice.app import Application, build
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.exchange.model import DeliveryState
from justice.exchange.store import DeliveryQuery
from justice.exchange.v1 import exchange_pb2 as pb
from justice.partner.client import Answer, ProcessedLog, Received, listen
from justice.partner.simulator import ProsecutorSimulator
from justice.reports.model import ReportState
from tests.builders import PROSECUTOR, submitted_report
from tests.eventually import eventually
from tests.exchange_env import exchange_settings, nats_with_partners, partner_record, partner_side


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

        await eventually(state, within=20)
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

        assert await eventually(rejected, within=20) == "NOT_COMPETENT: another district"
        exchange = app.exchange
        assert exchange is not None

        async def refusals() -> list[str] | None:
            # The delivery records the answer in its own transaction, after the report's.
            deliveries = await exchange.service.list_deliveries(
                DeliveryQuery(size=10, recipient=PROSECUTOR, state=DeliveryState.REJECTED)
            )
            return [d.reason for d in deliveries]

        assert await eventually(refusals, within=20) == ["NOT_COMPETENT"]
    finally:
        stop.set()
        await task
        await client.close()


async def test_an_acknowledgement_nats_lost_is_sent_again_with_its_id(
    app: Application, pki: DevPki, nats: NatsServer
) -> None:
    """The partner's reply is stored before the report is acknowledged to NATS: when its
    publish fails, the batch comes again, is not handled again, and the reply sealed the
    first time goes again (same envelope id, so the platform applies it once)."""
    name = await submitted_report(app)
    client = await partner_side(pki).connect(nats, PROSECUTOR)
    simulator = ProsecutorSimulator(client)
    publish = client.publish
    attempts: list[str] = []

    async def lossy(envelope: pb.Envelope) -> None:
        if envelope.type == "report_acknowledged":
            attempts.append(envelope.id)
            if len(attempts) == 1:
                raise nats_errors.TimeoutError  # as if NATS never stored it
        await publish(envelope)

    client.publish = lossy  # type: ignore[method-assign]
    log_ = ProcessedLog()
    stop = asyncio.Event()
    task = asyncio.create_task(listen(client, simulator.handle, log_, stop))
    try:

        async def acknowledged() -> ReportState | None:
            report = await app.reports.get(name)
            return report.state if report.state is ReportState.ACKNOWLEDGED else None

        await eventually(acknowledged, within=20)
        assert simulator.acknowledged == [name]  # handled once
        assert len(attempts) == 2
        assert attempts[0] == attempts[1]
    finally:
        stop.set()
        await task
        await client.close()
