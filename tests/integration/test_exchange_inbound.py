"""The inbound consumer: killed mid-batch it applies nothing twice; poison does not stop it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from sqlalchemy import func, select

from justice.app import Application, build
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.exchange import bus
from justice.exchange.envelope import EnvelopeSigner, new_envelope_id
from justice.exchange.inbound import InboundMessage
from justice.exchange.model import Direction
from justice.exchange.store import DeadLetterQuery, OutboxRow, ProcessedRow
from justice.partner.client import PartnerClient
from justice.reports.model import ReportState
from justice.reports.v1 import reports_pb2
from tests.builders import submitted_report
from tests.eventually import eventually
from tests.exchange_env import (
    exchange_settings,
    nats_with_partners,
    partner_credentials,
    partner_record,
    partner_side,
    platform_process,
    platform_url,
)

PROSECUTOR = "prosecutor-antwerp"
SENDS = frozenset({"report_acknowledged", "report_rejected", "explode"})


@pytest.fixture(scope="module")
def nats_server_ex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with nats_with_partners(tmp_path_factory.mktemp("nats-in")) as server:
        yield server


async def _app(pki: DevPki, nats_server: NatsServer, tmp: Path, **kw: object) -> Application:
    settings = exchange_settings(
        pki, nats_server, tmp / "state", f"sqlite+aiosqlite:///{tmp / 'justice.db'}", **kw
    )
    application = await build(settings)
    assert application.exchange is not None
    await application.exchange.service.create_partner(partner_record(pki, PROSECUTOR, send=SENDS))
    return application


async def _count(app: Application, query: object) -> int:
    async with app.database.sessions() as session:
        return int((await session.exec(query)).one()[0])  # type: ignore[call-overload]


async def test_consumer_killed_mid_batch_applies_nothing_twice(
    pki: DevPki, nats_server_ex: NatsServer, tmp_path: Path
) -> None:
    app = await _app(pki, nats_server_ex, tmp_path, exchange={"relay": False, "inbound": False})
    # No workers run in this process; the streams are made here, as `justice serve` would.
    platform = await nats.connect(platform_url(nats_server_ex))
    await bus.ensure_streams(platform.jetstream())
    await platform.close()
    client = await partner_side(pki).connect(nats_server_ex, PROSECUTOR)
    total = 300
    try:
        names = [await submitted_report(app) for _ in range(total)]
        for name in names:
            ack = reports_pb2.ReportAcknowledgement(report=name)
            await client.send("report_acknowledged", ack.SerializeToString())
        applied = (
            select(func.count())
            .select_from(ProcessedRow)
            .where(
                ProcessedRow.scope == "reports"  # type: ignore[arg-type]
            )
        )
        log = tmp_path / "inbound.log"
        consumer = platform_process("inbound", app.settings, nats_server_ex, log)
        try:
            await eventually(lambda: _between(app, applied, 1, total), within=60)
            consumer.kill()  # SIGKILL mid-batch, by PID
            consumer.wait()
            partial = await _count(app, applied)
            assert 0 < partial < total
            consumer = platform_process("inbound", app.settings, nats_server_ex, log)
            await eventually(lambda: _between(app, applied, total, total + 1), within=60)
            await asyncio.sleep(1.0)  # anything redelivered has had its chance to misbehave
        finally:
            consumer.terminate()
            consumer.wait(timeout=30)
        assert await _count(app, applied) == total
        # One ACCEPTED receipt per message: the exchange's claim and its receipt commit together.
        receipts = select(func.count(), func.count(func.distinct(OutboxRow.in_reply_to))).where(
            OutboxRow.message_type == "receipt"  # type: ignore[arg-type]
        )
        async with app.database.sessions() as session:
            count, distinct = (await session.exec(receipts)).one()  # type: ignore[call-overload]
        assert count == distinct == total
        states = {(await app.reports.get(n)).state for n in names}
        assert states == {ReportState.ACKNOWLEDGED}
    finally:
        await client.close()
        await app.close()


async def _between(app: Application, query: object, low: int, high: int) -> bool:
    return low <= await _count(app, query) < high


@pytest.fixture
async def live_app(
    pki: DevPki, nats_server_ex: NatsServer, tmp_path: Path
) -> AsyncIterator[Application]:
    app = await _app(pki, nats_server_ex, tmp_path)
    yield app
    await app.close()


async def test_poison_messages_are_refused_and_the_consumer_carries_on(
    live_app: Application, pki: DevPki, nats_server_ex: NatsServer
) -> None:
    app = live_app
    assert app.exchange is not None
    assert app.exchange.workers is not None
    consumer = app.exchange.workers.consumer
    assert consumer is not None
    consumer._retry_delay = 0.2

    async def explode(message: InboundMessage) -> None:
        raise RuntimeError("handler bug")

    app.exchange.dispatcher.register("explode", explode)
    name = await submitted_report(app)
    credentials = partner_credentials(nats_server_ex, PROSECUTOR)
    raw = await nats.connect(
        nats_server_ex.url,
        user=credentials.user,
        password=credentials.password,
        inbox_prefix=credentials.inbox_prefix,
    )
    client: PartnerClient = await partner_side(pki).connect(nats_server_ex, PROSECUTOR)
    try:
        js = raw.jetstream()
        outbox = f"justice.v1.partner.{PROSECUTOR}.outbox"
        await js.publish(f"{outbox}.report_acknowledged", b"\xff\x00 not protobuf")
        # Signed by someone else's key: court-brussels signs, claiming to be the prosecutor.
        forger = EnvelopeSigner(PROSECUTOR, partner_side(pki).keys.identity("court-brussels").key)
        forged = forger.seal(
            envelope_id=new_envelope_id(),
            message_type="report_acknowledged",
            recipient="justice-server",
            created_at=datetime.now(UTC),
            payload=reports_pb2.ReportAcknowledgement(report=name).SerializeToString(),
        )
        await js.publish(f"{outbox}.report_acknowledged", forged.SerializeToString())
        await client.send("fines_paid", b"not allowed for a prosecutor")
        await client.send("explode", b"boom")
        await client.send(
            "report_acknowledged",
            reports_pb2.ReportAcknowledgement(report=name).SerializeToString(),
        )

        async def acknowledged() -> bool:
            return (await app.reports.get(name)).state is ReportState.ACKNOWLEDGED

        await eventually(acknowledged, within=20)

        async def reasons() -> set[str] | None:
            letters = await app.exchange.service.list_dead_letters(  # type: ignore[union-attr]
                DeadLetterQuery(size=50, direction=Direction.INBOUND)
            )
            found = {x.reason for x in letters}
            return found if len(found) >= 4 else None

        assert await eventually(reasons, within=30) == {
            "MALFORMED_ENVELOPE",
            "SIGNATURE_INVALID",
            "MESSAGE_TYPE_NOT_ALLOWED",
            "PROCESSING_FAILED",
        }
    finally:
        await raw.close()
        await client.close()
