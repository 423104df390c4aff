"""Group commit keeps "durable before the answer": while the audit batch cannot commit, the
call it records does not answer; once it answers, its record is in the database."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import grpc
import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from justice.app import Application
from justice.audit.writer import _LOCK
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc

PURPOSE = (("x-justice-purpose", "durability test"),)


@asynccontextmanager
async def audit_commits_blocked(url: str) -> AsyncIterator[None]:
    """Hold what the audit writer needs to commit, from a connection of our own: SQLite's
    write lock, or PostgreSQL's advisory lock that serialises audit batches."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # A long timeout: a log follower (detector, tree) may hold the lock for a moment
        # first. Waited for off the event loop, which that follower needs to finish.
        blocker = sqlite3.connect(
            parsed.database or "", isolation_level=None, timeout=30, check_same_thread=False
        )
        await asyncio.to_thread(blocker.execute, "BEGIN IMMEDIATE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        return
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as blocker:
        # The writer's key: the log's lock mixed with the schema (audit.store.append_chained).
        key = "%s::bigint # hashtext(current_schema())"
        blocker.execute(f"SELECT pg_advisory_lock({key})", (_LOCK,))
        try:
            yield
        finally:
            blocker.execute(f"SELECT pg_advisory_unlock({key})", (_LOCK,))


async def _records(application: Application, resource: str) -> int:
    """GetReport records of `resource`, read on a connection of the test's own."""
    async with application.database.engine.connect() as connection:
        query = text(
            "SELECT count(*) FROM audit_record WHERE method = 'GetReport' AND resource = :r"
        )
        return int(await connection.scalar(query, {"r": resource}) or 0)


async def test_a_call_answers_only_after_its_record_committed(
    application: Application, grpc_channel: grpc.aio.Channel
) -> None:
    stub = reports_pb2_grpc.ReportServiceStub(grpc_channel)
    report = pb.Report(case_number="AN.9", language="nl", narrative="Vaststelling.")
    report.facts_time.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
    created = await stub.CreateReport(pb.CreateReportRequest(report=report))
    request = pb.GetReportRequest(name=created.name)
    await application.audit.writer.close()  # nothing of CreateReport's left in flight
    async with audit_commits_blocked(application.database.url):
        call = asyncio.ensure_future(stub.GetReport(request, metadata=PURPOSE))
        done, _ = await asyncio.wait({call}, timeout=1.5)
        # The report was read long ago; the answer waits for the audit commit.
        assert not done
        assert await _records(application, created.name) == 0
    answer = await asyncio.wait_for(call, timeout=30)
    assert answer.name == created.name
    assert await _records(application, created.name) == 1
