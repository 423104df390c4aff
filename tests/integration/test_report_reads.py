"""The hot read path (SqlReportReads over plain driver connections): a version changed or
amended through one connection is never served stale through another that read it before;
one shown without reading (`view`, PostgreSQL) only until its change is announced."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from justice.platform.db import Database, PlainReads, plain_reads
from justice.platform.notify import Announced
from justice.platform.notify import supported as notifications_supported
from justice.reports import store
from justice.reports.model import Content, ReportState, ReportVersion
from justice.reports.store import REPORTS_CHANGED, ReportTransaction, ReportWrites, SqlReportReads
from tests.eventually import eventually

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


class _Counted:
    """Plain reads that count the rows asked for."""

    def __init__(self, reads: PlainReads) -> None:
        self._reads = reads
        self.reads = 0

    async def one(self, sql: str, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
        self.reads += 1
        return await self._reads.one(sql, parameters)

    async def close(self) -> None:
        await self._reads.close()


def _draft(report_id: str, narrative: str) -> ReportVersion:
    return ReportVersion(
        report_id=report_id,
        version=1,
        author="officer-1001",
        content=Content(case_number="AN.3", language="nl", narrative=narrative),
        written_time=NOW,
        create_time=NOW,
        update_time=NOW,
    )


async def _announced_after(announced: Announced, epoch: int) -> None:
    async def moved() -> bool:
        return announced.epoch > epoch

    await eventually(moved, what="the announcement")


@pytest.fixture
async def announced(database: Database) -> AsyncIterator[Announced]:
    if not notifications_supported(database.url):
        pytest.skip(
            "SQLite has no LISTEN/NOTIFY, so nothing is announced there (its reads: "
            "test_without_announcements_every_view_reads_the_row)"
        )
    listening = Announced(database.url, REPORTS_CHANGED)
    listening.start()
    await listening.listening()
    yield listening
    await listening.close()


async def test_without_announcements_every_view_reads_the_row(database: Database) -> None:
    counted = _Counted(plain_reads(database.url))
    reads = SqlReportReads(counted)  # type: ignore[arg-type]
    try:
        await _write(database, _draft("hot-3", "eerste"), new=True)
        for _ in range(3):
            assert await reads.view("hot-3") is not None
        assert counted.reads == 3
    finally:
        await counted.close()


async def test_another_processs_change_shows_once_announced(
    database: Database, announced: Announced
) -> None:
    """The writer here is not this process (nothing tells `announced` of its commits): only
    the trigger's notification can end the showing."""
    counted = _Counted(plain_reads(database.url))
    reads = SqlReportReads(counted, announced=announced)  # type: ignore[arg-type]
    try:
        report = _draft("hot-4", "eerste")
        epoch = announced.epoch
        await _write(database, report, new=True)
        await _announced_after(announced, epoch)  # the insert's
        epoch = announced.epoch
        first = await reads.view("hot-4")
        assert first is not None
        first.recipient = "changed by the caller"  # not held
        again = await reads.view("hot-4")
        assert again is not None
        assert (again.content.narrative, again.recipient) == ("eerste", "")
        assert counted.reads == 1  # shown without reading again

        report.edit(replace(report.content, narrative="tweede"), NOW + timedelta(minutes=1))
        await _write(database, report)
        await _announced_after(announced, epoch)
        changed = await reads.view("hot-4")
        assert changed is not None
        assert (changed.content.narrative, changed.revision) == ("tweede", 2)
        assert counted.reads == 2
    finally:
        await counted.close()


async def test_this_processs_own_commit_shows_at_once(database: Database) -> None:
    """Listening on a channel nothing is announced on: only the commit hooks of both write
    paths (the ORM's unit, the group-committed one) end the showing, before commit returns."""
    if not notifications_supported(database.url):
        pytest.skip("SQLite has no LISTEN/NOTIFY: no process is told of another's commits")
    quiet = Announced(database.url, "justice_reports_quiet")
    quiet.start()
    await quiet.listening()
    writer = Database(database.url)
    writer.on_commit(REPORTS_CHANGED, quiet.changed)
    plain = plain_reads(database.url)
    reads = SqlReportReads(plain, announced=quiet)
    try:
        report = _draft("hot-5", "eerste")
        await _write(writer, report, new=True)
        assert (await reads.view("hot-5")) is not None

        report.edit(replace(report.content, narrative="tweede"), NOW + timedelta(minutes=1))
        await _write(writer, report)
        shown = await reads.view("hot-5")
        assert shown is not None
        assert shown.content.narrative == "tweede"

        async def unseen(_key: str) -> bool:
            return False

        async with ReportWrites(writer.group, reads, unseen) as unit:
            current = await unit.reports.get("hot-5")
            assert current is not None
            current.edit(replace(current.content, narrative="derde"), NOW + timedelta(minutes=2))
            await unit.reports.update(current)
            await unit.commit()
        shown = await reads.view("hot-5")
        assert shown is not None
        assert (shown.content.narrative, shown.revision) == ("derde", 3)
    finally:
        await plain.close()
        await writer.close()
        await quiet.close()


async def test_nothing_is_shown_unread_when_not_listening_or_after_a_second(
    database: Database, announced: Announced, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = _Counted(plain_reads(database.url))
    reads = SqlReportReads(counted, announced=announced)  # type: ignore[arg-type]
    try:
        await _write(database, _draft("hot-6", "eerste"), new=True)
        monkeypatch.setattr(store, "_SHOWN_SECONDS", 0.0)
        await reads.view("hot-6")
        await reads.view("hot-6")
        assert counted.reads == 2
        monkeypatch.undo()
        await announced.close()  # as when its connection drops
        await reads.view("hot-6")
        await reads.view("hot-6")
        assert counted.reads == 4
    finally:
        await counted.close()
