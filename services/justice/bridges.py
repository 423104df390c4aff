"""Bridges: each domain's ports implemented with another domain's service or lookup.

A domain states what it needs from another as a Protocol of its own (evidence's
CaseDirectory, reports' EvidenceCatalog, audit's UnitOf) and never imports the other
domain. These adapters know both sides, so they live here, on the top floor beside the
composition root that connects them; only app.py imports this module.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from justice.audit.alarms import PlatformAlarms
from justice.audit.model import Alert, AlertRule
from justice.custody.ledger import CustodyAlert
from justice.evidence.service import EvidenceService
from justice.exchange.message import Link
from justice.platform.errors import JusticeError
from justice.platform.listing import Page
from justice.reports.lookup import ReportLookup
from justice.reports.model import Attachment
from justice.reports.service import StoredEvidence


class ReportCases:
    """evidence.CaseDirectory: cases as reports know them (evidence never reads report tables)."""

    def __init__(self, reports: ReportLookup) -> None:
        self._reports = reports

    async def case_known(self, case_number: str) -> bool:
        return await self._reports.case_known(case_number)

    async def report_case(self, report: str) -> str | None:
        found = await self._reports.get(report)
        return found.content.case_number if found else None

    async def report_recipient(self, report: str) -> str | None:
        found = await self._reports.get(report)
        return (found.recipient or None) if found else None


class NoCases:
    """evidence.CaseDirectory for tools that only read evidence: no case is known, so nothing
    can be uploaded."""

    async def case_known(self, case_number: str) -> bool:
        return False

    async def report_case(self, report: str) -> str | None:
        return None

    async def report_recipient(self, report: str) -> str | None:
        return None


class EvidenceAttachments:
    """reports.EvidenceCatalog: recorded facts of an attachment, whether its stored bytes
    still match them, and links for the partner a report goes to."""

    def __init__(self, evidence: EvidenceService, link_lifetime: timedelta) -> None:
        self._evidence = evidence
        # Long enough for a partner to fetch after a delayed delivery (the share maximum).
        self._lifetime = link_lifetime

    async def stored(self, evidence: str) -> StoredEvidence | None:
        record, intact = await self._evidence.check_stored(evidence)
        if record is None:
            return None
        attachment = Attachment(
            evidence=record.name,
            sha256=record.sha256,
            size_bytes=record.size_bytes,
            media_type=record.metadata.media_type,
        )
        return StoredEvidence(attachment, intact)

    async def links(
        self, attachments: Sequence[Attachment], recipient: str, sharer: str, purpose: str
    ) -> tuple[Link, ...]:
        links = []
        for attachment in attachments:
            shared = await self._evidence.share(
                sharer, attachment.evidence, recipient, self._lifetime, purpose
            )
            links.append(
                Link(
                    attachment.evidence,
                    shared.url,
                    attachment.sha256,
                    attachment.size_bytes,
                    attachment.media_type,
                )
            )
        return tuple(links)


class NoEvidence:
    """reports.EvidenceCatalog without S3: no attachment can be checked, so none can be signed."""

    async def stored(self, evidence: str) -> StoredEvidence | None:
        return None

    async def links(
        self, attachments: Sequence[Attachment], recipient: str, sharer: str, purpose: str
    ) -> tuple[Link, ...]:
        return ()  # nothing was signed with attachments, so nothing is submitted with them


class UnitListing(Protocol):
    """The access registry's units, a page at a time (AccessService, or peers.RemoteUnits)."""

    async def list_units(self, page: Page) -> Sequence[UnitNames]: ...


class UnitNames(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def display_name(self) -> str: ...


class UnitIds:
    """Unit ids by what a report records as its reporting unit (the unit's display name, or
    its id), from the access registry: audit records carry unit ids."""

    def __init__(self, access: UnitListing, refresh_seconds: float = 5.0) -> None:
        self._access = access
        self._refresh = refresh_seconds
        self._ids: dict[str, str] = {}
        self._loaded = -refresh_seconds

    async def id_of(self, unit: str) -> str | None:
        if unit not in self._ids and time.monotonic() - self._loaded >= self._refresh:
            ids: dict[str, str] = {}
            after = ""
            while True:
                units = await self._access.list_units(Page(500, after))
                for u in units:
                    ids[u.id] = u.id
                    ids.setdefault(u.display_name, u.id)
                if len(units) < 500:
                    break
                after = units[-1].id
            self._ids, self._loaded = ids, time.monotonic()
        return self._ids.get(unit)


class EvidenceReports(Protocol):
    """The report a piece of evidence belongs to (AttachedReports, or peers.RemoteEvidence)."""

    async def report_of(self, evidence: str) -> str | None: ...


class AttachedReports:
    """EvidenceReports from the evidence service in this process."""

    def __init__(self, evidence: EvidenceService) -> None:
        self._evidence = evidence

    async def report_of(self, evidence: str) -> str | None:
        return (await self._evidence.get(evidence)).metadata.report or None


class ReportUnits(Protocol):
    """The unit a report records as its reporting unit (ReportLookup, or peers.RemoteReports)."""

    async def reporting_unit(self, report: str) -> str | None: ...


class Owners:
    """audit.UnitOf: which unit owns a record, asked of the owning domain (the detector's
    OUTSIDE_UNIT rule)."""

    def __init__(
        self, reports: ReportUnits, evidence: EvidenceReports | None, units: UnitIds
    ) -> None:
        self._reports = reports
        self._evidence = evidence
        self._units = units

    async def unit_of(self, resource: str) -> str | None:
        try:
            if resource.startswith("evidence/") and self._evidence is not None:
                # Evidence belongs to the unit of the report it was attached to.
                resource = await self._evidence.report_of(resource) or ""
            if resource.startswith("reports/"):
                unit = await self._reports.reporting_unit(resource)
                return await self._units.id_of(unit) if unit else None
        except JusticeError:
            return None
        return None


class CustodyAlerts:
    """custody.AlertSink: custody's alerts (broken seal, missing item, overdue check-out)
    through the audit alert channel: stored, listed by ListAlerts, announced on NATS."""

    def __init__(self, alarms: PlatformAlarms, clock: Callable[[], datetime]) -> None:
        self._alarms = alarms
        self._clock = clock

    async def raise_alerts(self, alerts: Sequence[CustodyAlert]) -> None:
        now = self._clock()
        await self._alarms.raise_alerts(
            [
                Alert(
                    id=hashlib.sha256(a.key.encode()).hexdigest()[:32],
                    rule=AlertRule(a.rule),
                    principal=a.principal,
                    agency="",
                    unit="",
                    summary=a.summary,
                    create_time=now,
                    first_sequence=0,
                    last_sequence=0,
                )
                for a in alerts
            ]
        )
