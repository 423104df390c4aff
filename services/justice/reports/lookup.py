"""What other domains may ask about reports: read-only, and needing no evidence store.

It exists apart from ReportService because the two domains need each other: reports check
and share evidence when they are signed and submitted, and evidence is uploaded into the
cases reports know. The evidence service is built on this lookup, and the report service
on the evidence service, so neither waits for the other to exist.
"""

from __future__ import annotations

from collections.abc import Callable

from justice.platform.errors import JusticeError
from justice.platform.listing import Page
from justice.reports.model import ReportQuery, ReportVersion, check_case_number
from justice.reports.service import UnitOfWork, parse_name


class ReportLookup:
    def __init__(self, uow: Callable[[], UnitOfWork]) -> None:
        self._uow = uow

    async def get(self, name: str) -> ReportVersion | None:
        """The named report (or version); None for no such report or a malformed name."""
        try:
            report_id, version = parse_name(name)
        except JusticeError:
            return None
        async with self._uow() as uow:
            return await uow.reports.get(report_id, version)

    async def reporting_unit(self, name: str) -> str | None:
        """The unit the named report records (a display name or an id); None for none."""
        found = await self.get(name)
        return found.content.reporting_unit if found else None

    async def case_known(self, case_number: str) -> bool:
        check_case_number(case_number)
        query = ReportQuery(page=Page(1, ""), case_number=case_number)
        async with self._uow() as uow:
            return bool(await uow.reports.list_latest(query))
