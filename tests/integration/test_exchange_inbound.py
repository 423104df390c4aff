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
from justice.exchange.inbound import InboundConsumer, InboundMessage
from justice.exchange.model import Direction
from justice.exchange.store import DeadLetterQuery, OutboxRow, ProcessedRow
from justice.partner.client import PartnerClient
from justice.platform.errors import Aborted
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
SENDS = frozenset({"report_acknowledged", "report_rejected", "explode", "slow", "go"})


@pytest.fixture(scope="module")
def nats_server_ex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with nats_with_partners(tmp_path_factory.mktemp("nats-in")) as server:
        yield server


async def _app(
    pki: DevPki, nats_server: NatsServer, tmp: Path, url: str = "", **kw: object
) -> Application:
    url = url or f"sqlite+aiosqlite:///{tmp / 'justice.db'}"
    settings = exchange_settings(pki, nats_server, tmp / "state", url, **kw)
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


async def _raw_partner(server: NatsServer, partner_id: str) -> nats.NATS:
    """A partner's own NATS connection, to publish what its SDK would not."""
    credentials = partner_credentials(server, partner_id)
    return await nats.connect(
        server.url,
        user=credentials.user,
        password=credentials.password,
        inbox_prefix=credentials.inbox_prefix,
    )


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
    raw = await _raw_partner(nats_server_ex, PROSECUTOR)
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


async def test_a_concurrent_change_is_tried_again_at_once(
    live_app: Application, pki: DevPki, nats_server_ex: NatsServer
) -> None:
    """A message that loses to a concurrent change (ABORTED) is processed again right away,
    not a redelivery delay later."""
    app = live_app
    assert app.exchange is not None
    assert app.exchange.workers is not None
    consumer = app.exchange.workers.consumer
    assert consumer is not None
    consumer._retry_delay = 60  # a redelivery would come far too late for this test
    attempts: list[bytes] = []

    async def contested(message: InboundMessage) -> None:
        attempts.append(message.payload)
        if len(attempts) == 1:
            raise Aborted("CONCURRENT_CHANGE", "changed meanwhile; read it again")

    app.exchange.dispatcher.register("explode", contested)
    client: PartnerClient = await partner_side(pki).connect(nats_server_ex, PROSECUTOR)
    try:
        await client.send("explode", b"contested")

        async def twice() -> bool:
            return len(attempts) == 2

        await eventually(twice, within=10)
        # Accepted on the second attempt: one processed claim, no dead letter.
        letters = await app.exchange.service.list_dead_letters(
            DeadLetterQuery(size=50, direction=Direction.INBOUND)
        )
        assert letters == []
        await asyncio.sleep(0.5)
        assert attempts == [b"contested", b"contested"]
    finally:
        await client.close()


COURT = "court-brussels"


async def test_a_batch_is_handled_in_lanes_once_each_without_waiting_on_a_slow_sender(
    pki: DevPki, nats_server_ex: NatsServer, tmp_path: Path, database_url: str
) -> None:
    """One fetch: a prosecutor's slow reply, its duplicated acknowledgements and a failing
    message, and the two messages the slow one waits for: the court's, and the prosecutor's
    reply to another request. Each runs in a lane of its own beside the slow one's (one
    message at a time, the slow one waited its 5 s out); every acknowledgement applies once,
    the failing message is dead-lettered, nothing is left."""
    app = await _app(pki, nats_server_ex, tmp_path, database_url)
    assert app.exchange is not None
    assert app.exchange.workers is not None
    workers = app.exchange.workers
    assert workers.consumer is not None
    # The app's own consumer stops, so that everything below sits in the stream first and
    # arrives in one fetch.
    workers.request_stop()
    await workers.wait()
    await app.exchange.service.create_partner(partner_record(pki, COURT, send=frozenset({"go"})))
    released = {COURT: asyncio.Event(), PROSECUTOR: asyncio.Event()}
    waited: list[bool] = []

    async def slow(message: InboundMessage) -> None:
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in released.values())), 5.0)
            waited.append(True)
        except TimeoutError:
            waited.append(False)

    async def go(message: InboundMessage) -> None:
        released[message.sender].set()

    async def explode(message: InboundMessage) -> None:
        raise RuntimeError("handler bug")

    app.exchange.dispatcher.register("slow", slow)
    app.exchange.dispatcher.register("go", go)
    app.exchange.dispatcher.register("explode", explode)
    prosecutor = await partner_side(pki).connect(nats_server_ex, PROSECUTOR)
    court = await partner_side(pki).connect(nats_server_ex, COURT)
    raw = await _raw_partner(nats_server_ex, PROSECUTOR)
    stop = asyncio.Event()
    consumer = InboundConsumer(workers.consumer._processor, concurrency=4, max_attempts=1)
    try:
        names = [await submitted_report(app) for _ in range(10)]
        await prosecutor.send("slow", b"", in_reply_to="request-a")
        signer = partner_side(pki).keys.identity(PROSECUTOR).key
        for name in names:
            envelope = EnvelopeSigner(PROSECUTOR, signer).seal(
                envelope_id=new_envelope_id(),
                message_type="report_acknowledged",
                recipient="justice-server",
                created_at=datetime.now(UTC),
                payload=reports_pb2.ReportAcknowledgement(report=name).SerializeToString(),
            )
            subject = f"justice.v1.partner.{PROSECUTOR}.outbox.report_acknowledged"
            for copy in range(2):  # the same envelope twice, past the duplicate window
                await raw.jetstream().publish(
                    subject,
                    envelope.SerializeToString(),
                    headers={"Nats-Msg-Id": f"{envelope.id}.{copy}"},
                )
        await prosecutor.send("explode", b"boom")
        await court.send("go", b"")
        await prosecutor.send("go", b"", in_reply_to="request-b")
        run = asyncio.create_task(consumer.run(workers.link.jetstream, stop))
        await eventually(lambda: _handled(consumer, 1 + 2 * len(names) + 3), within=30)
        stop.set()
        await run
        assert waited == [True]
        assert {(await app.reports.get(n)).state for n in names} == {ReportState.ACKNOWLEDGED}
        reports_applied = (
            select(func.count()).select_from(ProcessedRow).where(ProcessedRow.scope == "reports")  # type: ignore[arg-type]
        )
        assert await _count(app, reports_applied) == len(names)
        letters = await app.exchange.service.list_dead_letters(
            DeadLetterQuery(size=50, direction=Direction.INBOUND)
        )
        assert [x.reason for x in letters] == ["PROCESSING_FAILED"]
    finally:
        stop.set()
        await raw.close()
        await prosecutor.close()
        await court.close()
        await app.close()


async def _handled(consumer: InboundConsumer, count: int) -> bool:
    return consumer.processed >= count
