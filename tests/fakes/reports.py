"""The reports domain's unit of work in memory: report versions and the outbox. Reads and
writes hand out copies, so a version changed but not written back stays as it was, and a
write of a version changed meanwhile is refused as the database refuses it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from justice.exchange.message import OutgoingMessage
from justice.platform.errors import Aborted
from justice.reports.model import ReportQuery, ReportVersion
from tests.fakes.exchange import InMemoryInbox, InMemoryOutbox
from tests.fakes.unit_of_work import InMemoryUnitOfWork


@dataclass
class ReportTables:
    versions: dict[tuple[str, int], ReportVersion] = field(default_factory=dict)
    outbox: list[OutgoingMessage] = field(default_factory=list)
    claimed: set[str] = field(default_factory=set)


class InMemoryReports:
    def __init__(self, tables: ReportTables) -> None:
        self._rows = tables.versions

    async def add(self, report: ReportVersion) -> None:
        self._rows[(report.report_id, report.version)] = replace(report)

    async def get(self, report_id: str, version: int | None = None) -> ReportVersion | None:
        versions = [v for (r, v) in self._rows if r == report_id]
        if not versions:
            return None
        row = self._rows.get((report_id, version if version else max(versions)))
        return replace(row) if row else None

    async def by_request(self, author: str, request_id: str) -> ReportVersion | None:
        return next(
            (
                replace(r)
                for r in self._rows.values()
                if (r.author, r.request_id) == (author, request_id)
            ),
            None,
        )

    async def update(self, report: ReportVersion) -> None:
        stored = self._rows[(report.report_id, report.version)]
        if stored.revision != report.revision:
            raise Aborted("CONCURRENT_CHANGE", "changed meanwhile")
        report.revision += 1
        self._rows[(report.report_id, report.version)] = replace(report)

    async def list_latest(self, query: ReportQuery) -> Sequence[ReportVersion]:
        return []


class ReportUnit(InMemoryUnitOfWork[ReportTables]):
    @property
    def reports(self) -> InMemoryReports:
        return InMemoryReports(self.staged)

    @property
    def outbox(self) -> InMemoryOutbox:
        return InMemoryOutbox(self.staged.outbox)

    @property
    def inbox(self) -> InMemoryInbox:
        return InMemoryInbox(self.staged.claimed)
