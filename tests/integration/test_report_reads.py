"""The hot read path (SqlReportReads over plain driver connections): a version changed or
amended through one connection is never served stale through another that read it before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from justice.platform.db import Database, plain_reads
from justice.reports.model import Content, ReportState, ReportVersion
from justice.reports.store import ReportTransaction, SqlReportReads

NOW = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await db.migrate()
    yield db
    await db.close()


async def _write(database: Database, report: ReportVersion, *, new: bool = False) -> None:
    """A change committed through the ORM engine: another connection than the readers'."""
    async with ReportTransaction(database.sessions) as tx:
        if new:
            await tx.reports.add(report)
        else:
            await tx.reports.update(report)
        await tx.commit()


async def test_a_change_through_one_connection_is_read_at_once_through_others(
    database: Database,
) -> None:
    first, second = plain_reads(database.url), plain_reads(database.url)
    reads_a, reads_b = SqlReportReads(first), SqlReportReads(second)
    try:
        report = ReportVersion(
            report_id="hot-1",
            version=1,
            author="officer-1001",
            content=Content(case_number="AN.1", language="nl", narrative="eerste"),
            written_time=NOW,
            create_time=NOW,
            update_time=NOW,
        )
        await _write(database, report, new=True)
        for reads in (reads_a, reads_b):  # both now hold revision 1
            held = await reads.get("hot-1")
            assert held is not None
            assert held.content.narrative == "eerste"
            assert held.create_time == NOW  # times come back aware, in UTC, to the microsecond

        report.edit(replace(report.content, narrative="tweede"), NOW + timedelta(minutes=1))
        await _write(database, report)
        for reads in (reads_a, reads_b):
            edited = await reads.get("hot-1")
            assert edited is not None
            assert (edited.content.narrative, edited.revision) == ("tweede", 2)

        report.sign(b"<signed/>", "ab" * 32, NOW + timedelta(minutes=2))
        await _write(database, report)
        signed = await reads_b.get("hot-1", 1)
        assert signed is not None
        assert (signed.state, signed.signed_xml) == (ReportState.SIGNED, b"<signed/>")

        # Amended elsewhere: the latest is version 2 at once, version 1 is superseded.
        amendment = report.amendment("", NOW + timedelta(minutes=3))
        await _write(database, amendment, new=True)
        report.move_to(ReportState.SUPERSEDED)
        await _write(database, report)
        for reads in (reads_a, reads_b):
            latest = await reads.get("hot-1")
            assert latest is not None
            assert (latest.version, latest.state) == (2, ReportState.DRAFT)
            old = await reads.get("hot-1", 1)
            assert old is not None
            assert old.state is ReportState.SUPERSEDED
        assert await reads_a.get("hot-1", 3) is None
        assert await reads_a.get("no-such-report") is None
    finally:
        await first.close()
        await second.close()


async def test_what_a_caller_changes_in_its_copy_is_not_held(database: Database) -> None:
    reads = plain_reads(database.url)
    try:
        report = ReportVersion(
            report_id="hot-2",
            version=1,
            author="officer-1001",
            content=Content(case_number="AN.2", language="nl", narrative="vast"),
            written_time=NOW,
            create_time=NOW,
            update_time=NOW,
        )
        await _write(database, report, new=True)
        cached = SqlReportReads(reads)
        mine = await cached.get("hot-2")
        assert mine is not None
        mine.recipient = "someone-else"
        again = await cached.get("hot-2")
        assert again is not None
        assert again.recipient == ""
    finally:
        await reads.close()
