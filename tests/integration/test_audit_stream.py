"""The audit stream on a real nats-server (with the platform's NATS user): every committed
record is on `justice.v1.audit.<service>` with Nats-Msg-Id `audit-<seq>`, in order, exactly
once, across a publisher restart and a NATS outage; RPCs never wait for NATS."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import nats
import pytest
from sqlalchemy import text

from justice.app import Application
from justice.audit.checkpoints import NoteVerifier, open_checkpoint
from justice.audit.publisher import CHECKPOINT_SUBJECT, STREAM, subject_of
from justice.audit.store import AuditTransaction
from justice.audit.v1 import audit_pb2 as apb
from justice.audit.v1 import audit_pb2_grpc
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.platform.db import Database
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from tests.api.conftest import client_credentials
from tests.eventually import eventually
from tests.exchange_env import nats_with_partners, platform_url, serve_platform, stop_platform

PURPOSE = (("x-justice-purpose", "audit stream test"),)


@pytest.fixture(scope="module")
def nats_server_own(
    tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> Iterator[NatsServer]:
    # Our own server, one per database: these tests kill it, and its stream must hold this
    # log's records only (another log's sequences would collide with its message ids).
    with nats_with_partners(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture
async def platform(
    pki: DevPki, nats_server_own: NatsServer, state_dir: Path, database_url: str
) -> AsyncIterator[Application]:
    application = await serve_platform(pki, nats_server_own, state_dir, database_url)
    yield application
    await stop_platform(application)


async def _traffic(application: Application, pki: DevPki, calls: int = 4) -> None:
    """Reads, a refused read and writes as an officer; a query as an auditor."""
    target = f"localhost:{application.server.port}"
    async with grpc.aio.secure_channel(target, client_credentials(pki, "officer-1001")) as channel:
        reports = reports_pb2_grpc.ReportServiceStub(channel)
        for _ in range(calls):
            await reports.ListReports(pb.ListReportsRequest(page_size=1), metadata=PURPOSE)
        with pytest.raises(grpc.aio.AioRpcError):
            await reports.GetReport(pb.GetReportRequest(name="reports/none"))
    async with grpc.aio.secure_channel(target, client_credentials(pki, "auditor-4001")) as channel:
        audit = audit_pb2_grpc.AuditServiceStub(channel)
        await audit.VerifyAuditChain(apb.VerifyAuditChainRequest())


async def _head_and_cursor(application: Application) -> tuple[int, int]:
    async with AuditTransaction(application.database.sessions) as tx:
        return await tx.records.head(), await tx.records.cursor("publisher")


async def _published(application: Application) -> int:
    """The head, once the publisher has caught up with it."""
    head, cursor = await _head_and_cursor(application)
    return head if head and cursor == head else 0


async def _stream(server: NatsServer) -> list[tuple[str, str, apb.AuditRecord]]:
    """(subject, Nats-Msg-Id, record) of every record on the audit stream, in stream order
    (the signed checkpoints that share the stream are left out)."""
    client = await nats.connect(platform_url(server))
    try:
        js = client.jetstream()
        state = (await js.stream_info(STREAM)).state
        found = []
        for seq in range(state.first_seq, state.last_seq + 1):
            message = await js.get_msg(STREAM, seq)
            if message.subject == CHECKPOINT_SUBJECT:
                continue
            record = apb.AuditRecord.FromString(message.data or b"")
            found.append((message.subject or "", (message.headers or {})["Nats-Msg-Id"], record))
        return found
    finally:
        await client.close()


async def _assert_stream_is_the_log(application: Application, server: NatsServer) -> int:
    """Every record of the log on the stream once, in sequence order, as stored."""
    head = await eventually(lambda: _published(application), what="publisher caught up")
    on_stream = await _stream(server)
    assert [r.sequence for _, _, r in on_stream] == list(range(1, head + 1))
    async with AuditTransaction(application.database.sessions) as tx:
        stored = await tx.records.after(0, head + 1)
    for (subject, msg_id, record), kept in zip(on_stream, stored, strict=True):
        assert msg_id == f"audit-{kept.sequence}"
        assert subject == subject_of(kept.entry.service)
        assert (record.hash, record.previous_hash, record.method, record.outcome) == (
            kept.hash,
            kept.previous_hash,
            kept.entry.method,
            kept.entry.outcome,
        )
    return head


async def test_committed_records_are_on_the_stream_in_order_exactly_once(
    pki: DevPki, nats_server_own: NatsServer, state_dir: Path, database_url: str
) -> None:
    application = await serve_platform(pki, nats_server_own, state_dir, database_url)
    try:
        await _traffic(application, pki)
        head = await _assert_stream_is_the_log(application, nats_server_own)
        subjects = {subject for subject, _, _ in await _stream(nats_server_own)}
        assert {"justice.v1.audit.reports", "justice.v1.audit.audit"} <= subjects
    finally:
        await stop_platform(application)

    # A publisher that crashed after the PubAcks and before moving its cursor: on restart it
    # sends everything again, and the stream drops every copy by its Nats-Msg-Id.
    database = Database(database_url)
    async with database.engine.begin() as connection:
        await connection.execute(
            text("UPDATE audit_cursor SET sequence = 0 WHERE name = 'publisher'")
        )
    await database.close()
    restarted = await serve_platform(pki, nats_server_own, state_dir, database_url)
    try:
        assert await _assert_stream_is_the_log(restarted, nats_server_own) == head
    finally:
        await stop_platform(restarted)


async def test_rpcs_do_not_wait_for_nats_and_the_backlog_flushes_when_it_returns(
    pki: DevPki, platform: Application, nats_server_own: NatsServer
) -> None:
    await _traffic(platform, pki, calls=1)
    before = await _assert_stream_is_the_log(platform, nats_server_own)
    nats_server_own.kill()
    try:
        started = time.monotonic()
        await _traffic(platform, pki, calls=10)
        # Answered at database speed: none of these calls waited on the dead server.
        assert time.monotonic() - started < 5.0
        head, cursor = await _head_and_cursor(platform)
        assert head > before
        assert cursor < head
    finally:
        nats_server_own.restart()
    assert await _assert_stream_is_the_log(platform, nats_server_own) == head


async def test_signed_checkpoints_are_published_on_their_subject(
    pki: DevPki, platform: Application, nats_server_own: NatsServer
) -> None:
    await _traffic(platform, pki)
    await eventually(lambda: _published(platform), what="the records on the stream")
    assert platform.audit.witnessed is not None
    note = await platform.audit.witnessed.checkpoint(fresh=True)

    client = await nats.connect(platform_url(nats_server_own))
    try:
        last = await client.jetstream().get_last_msg(STREAM, CHECKPOINT_SUBJECT)
    finally:
        await client.close()
    assert (last.data or b"").decode() == note
    key = NoteVerifier.parse(platform.audit.witnessed.vkey)
    assert open_checkpoint(note, key).origin == platform.settings.audit.origin
