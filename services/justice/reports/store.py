"""Report tables and repository (sqlmodel). Only the report service reads these tables."""

from __future__ import annotations

import copy
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Self, cast

from sqlalchemy import Column, CursorResult, Index, LargeBinary, Text, bindparam, update
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from justice.exchange.store import (
    PlainInbox,
    PlainOutbox,
    SqlInbox,
    SqlOutbox,
)
from justice.platform.db import (
    GroupCommit,
    PlainReads,
    Transaction,
    UtcDateTime,
    Writes,
    execute,
    page_after,
    select_sql,
    time_columns,
    update_parameters,
    utc_times,
    where_given,
)
from justice.platform.errors import Aborted
from justice.platform.notify import Announced
from justice.reports.model import (
    Attachment,
    Content,
    Offence,
    Person,
    PersonRole,
    ReportQuery,
    ReportState,
    ReportVersion,
)


class ReportRow(SQLModel, table=True):
    __tablename__ = "report_version"
    __table_args__ = (
        Index("ix_report_version_request", "author", "request_id", unique=True),
        Index("ix_report_version_latest", "latest", "report_id"),
    )

    report_id: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    amends_version: int = 0
    latest: bool = True
    state: str = Field(max_length=16, index=True)
    author: str = Field(max_length=128, index=True)
    case_number: str = Field(max_length=64, index=True)
    # NULL when absent: NULLs never collide in the unique index.
    request_id: str | None = Field(default=None, max_length=128)
    content: str = Field(sa_column=Column(Text, nullable=False))
    written_time: datetime = Field(sa_type=UtcDateTime)
    create_time: datetime = Field(sa_type=UtcDateTime)
    update_time: datetime = Field(sa_type=UtcDateTime)
    sign_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    signed_xml: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    signed_sha256: str = Field(default="", max_length=64)
    revision: int = 1
    # Partner the version was submitted to, and its reason if it refused it (0004_exchange).
    recipient: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})
    rejection_reason: str = Field(
        default="", max_length=600, sa_column_kwargs={"server_default": ""}
    )


def _content_json(content: Content) -> str:
    return json.dumps(
        {
            "case_number": content.case_number,
            "reporting_unit": content.reporting_unit,
            "offences": [[o.code, o.article, o.description] for o in content.offences],
            "place": content.place,
            "facts_time": content.facts_time.isoformat() if content.facts_time else None,
            "persons": [
                {
                    "role": p.role.value if p.role else None,
                    "given_name": p.given_name,
                    "family_name": p.family_name,
                    "birth_date": p.birth_date.isoformat() if p.birth_date else None,
                    "national_id": p.national_id,
                }
                for p in content.persons
            ],
            "language": content.language,
            "narrative": content.narrative,
            "attachments": [
                [a.evidence, a.sha256, a.size_bytes, a.media_type] for a in content.attachments
            ],
        },
        ensure_ascii=False,
    )


def _content(raw: str) -> Content:
    data: dict[str, Any] = json.loads(raw)
    return Content(
        case_number=data["case_number"],
        reporting_unit=data["reporting_unit"],
        offences=tuple(Offence(*o) for o in data["offences"]),
        place=data["place"],
        facts_time=datetime.fromisoformat(data["facts_time"]) if data["facts_time"] else None,
        persons=tuple(
            Person(
                role=PersonRole(p["role"]) if p["role"] else None,
                given_name=p["given_name"],
                family_name=p["family_name"],
                birth_date=date.fromisoformat(p["birth_date"]) if p["birth_date"] else None,
                national_id=p["national_id"],
            )
            for p in data["persons"]
        ),
        language=data["language"],
        narrative=data["narrative"],
        attachments=tuple(Attachment(*a) for a in data["attachments"]),
    )


_TABLE = ReportRow.__table__  # type: ignore[attr-defined]


def _to_domain(row: Mapping[str, Any]) -> ReportVersion:
    return ReportVersion(
        report_id=row["report_id"],
        version=row["version"],
        author=row["author"],
        content=_content(row["content"]),
        written_time=row["written_time"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        state=ReportState(row["state"]),
        amends_version=row["amends_version"],
        request_id=row["request_id"] or "",
        sign_time=row["sign_time"],
        signed_xml=row["signed_xml"],
        signed_sha256=row["signed_sha256"],
        revision=row["revision"],
        recipient=row["recipient"],
        rejection_reason=row["rejection_reason"],
    )


_TIMES = time_columns(_TABLE)
_SELECT = select_sql(_TABLE)
_READ = {
    True: _SELECT + "WHERE report_id = :id AND latest",
    False: _SELECT + "WHERE report_id = :id AND version = :version",
}


# The channel report versions' changes are announced on (migration 0017's trigger), and the
# marker of this process's units that change them (Database.on_commit).
REPORTS_CHANGED = "justice_reports"
# How long a version shown without reading stays showable, however quiet the channel: the
# bound on staleness should the listener's connection die without an error.
_SHOWN_SECONDS = 1.0


@dataclass(frozen=True)
class _Shown:
    epoch: int
    until: float
    version: ReportVersion


class SqlReportReads:
    """GetReport's read: one plain driver call, and parsed versions kept by revision.

    Every change to a version bumps its revision in the same UPDATE (SqlReportRepository
    .update), so (report, version, revision) names one immutable content: a row whose
    revision is held is not parsed again (JSON, dates, domain objects). `get` reads the row
    every time, so a change committed by any process or connection is seen by the next
    read: nothing is served stale, and nothing has to be told to invalidate.

    `view`, for showing a version to a reader, skips even the read where changes are
    `announced` (PostgreSQL): see there.
    """

    def __init__(
        self, reads: PlainReads, capacity: int = 4_096, announced: Announced | None = None
    ) -> None:
        self._reads = reads
        self._capacity = capacity
        self._held: OrderedDict[tuple[str, int], ReportVersion] = OrderedDict()
        self._announced = announced
        self._shown: OrderedDict[tuple[str, int | None], _Shown] = OrderedDict()

    async def get(self, report_id: str, version: int | None = None) -> ReportVersion | None:
        row = await self._reads.one(_READ[version is None], {"id": report_id, "version": version})
        if row is None:
            return None
        key = (report_id, row["version"])
        held = self._held.get(key)
        if held is None or held.revision != row["revision"]:
            held = _to_domain(utc_times(row, _TIMES))
            self._held[key] = held
            if len(self._held) > self._capacity:
                self._held.popitem(last=False)
        self._held.move_to_end(key)
        # A copy: callers may change what they get, the held version must not change.
        return copy.copy(held)

    async def view(self, report_id: str, version: int | None = None) -> ReportVersion | None:
        """As `get`, or the version shown before if no change to any report was announced
        since (nor a second passed): on PostgreSQL a read costs a round trip through the
        event loop, a third of a GetReport. Another process's change shows once its
        notification arrives (milliseconds); this process's own at once."""
        announced = self._announced
        if announced is None or not announced.live:
            return await self.get(report_id, version)
        key = (report_id, version)
        epoch, now = announced.epoch, time.monotonic()
        shown = self._shown.get(key)
        if shown is not None and shown.epoch == epoch and now < shown.until:
            return copy.copy(shown.version)
        found = await self.get(report_id, version)
        # Not held when a change was announced during the read: it may predate it.
        if found is not None and announced.live and announced.epoch == epoch:
            self._shown[key] = _Shown(epoch, now + _SHOWN_SECONDS, copy.copy(found))
            self._shown.move_to_end(key)
            if len(self._shown) > self._capacity:
                self._shown.popitem(last=False)
        return found


_UPDATED = (
    "state",
    "case_number",
    "content",
    "written_time",
    "update_time",
    "sign_time",
    "signed_xml",
    "signed_sha256",
    "revision",
    "recipient",
    "rejection_reason",
)
# Built once: building the statement per call cost as much as running it.
_UPDATE = (
    update(_TABLE)
    .where(
        _TABLE.c.report_id == bindparam("w_report_id"),
        _TABLE.c.version == bindparam("w_version"),
        _TABLE.c.revision == bindparam("w_revision"),
    )
    .values({name: bindparam(f"v_{name}", type_=_TABLE.c[name].type) for name in _UPDATED})
)


def _update_values(report: ReportVersion) -> tuple[dict[str, Any], dict[str, Any]]:
    """The UPDATE's values (the version's new ones) and the row it changes: that version,
    guarded by the revision it had."""
    values = {
        "state": report.state.value,
        "case_number": report.content.case_number,
        "content": _content_json(report.content),
        "written_time": report.written_time,
        "update_time": report.update_time,
        "sign_time": report.sign_time,
        "signed_xml": report.signed_xml,
        "signed_sha256": report.signed_sha256,
        "revision": report.revision + 1,
        "recipient": report.recipient,
        "rejection_reason": report.rejection_reason,
    }
    where = {"report_id": report.report_id, "version": report.version, "revision": report.revision}
    return values, where


def _changed(report: ReportVersion) -> Aborted:
    return Aborted(
        "CONCURRENT_CHANGE", f"{report.name}@{report.version} changed meanwhile; read it again"
    )


class SqlReportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, report: ReportVersion) -> None:
        if report.version > 1:
            await execute(
                self._session,
                update(_TABLE).where(_TABLE.c.report_id == report.report_id).values(latest=False),
            )
        self._session.add(
            ReportRow(
                report_id=report.report_id,
                version=report.version,
                amends_version=report.amends_version,
                latest=True,
                state=report.state.value,
                author=report.author,
                case_number=report.content.case_number,
                request_id=report.request_id or None,
                content=_content_json(report.content),
                written_time=report.written_time,
                create_time=report.create_time,
                update_time=report.update_time,
                revision=report.revision,
            )
        )
        await self._session.flush()
        self._session.info[REPORTS_CHANGED] = True

    async def get(self, report_id: str, version: int | None = None) -> ReportVersion | None:
        which = _TABLE.c.latest if version is None else _TABLE.c.version == version
        return await self._one(select(_TABLE).where(_TABLE.c.report_id == report_id, which))

    async def by_request(self, author: str, request_id: str) -> ReportVersion | None:
        return await self._one(
            select(_TABLE).where(_TABLE.c.author == author, _TABLE.c.request_id == request_id)
        )

    async def _one(self, query: Any) -> ReportVersion | None:
        # Plain rows, not entities: the domain object is built straight from the columns.
        row = (await execute(self._session, query)).first()
        return _to_domain(row._mapping) if row else None

    async def update(self, report: ReportVersion) -> None:
        result = await execute(self._session, _UPDATE, update_parameters(*_update_values(report)))
        if cast(CursorResult[Any], result).rowcount != 1:
            raise _changed(report)
        self._session.info[REPORTS_CHANGED] = True
        report.revision += 1

    async def list_latest(self, query: ReportQuery) -> Sequence[ReportVersion]:
        statement = where_given(
            select(_TABLE).where(_TABLE.c.latest),
            (_TABLE.c.case_number, query.case_number),
            (_TABLE.c.author, query.author),
            (_TABLE.c.state, query.state.value if query.state else None),
        )
        statement = page_after(
            statement, _TABLE.c.report_id, after=query.page.after, size=query.page.size
        )
        rows = (await execute(self._session, statement)).all()
        return [_to_domain(row._mapping) for row in rows]


class ReportTransaction(Transaction):
    """One transaction over the report tables and the outbox."""

    def bind(self, session: AsyncSession) -> None:
        self.reports = SqlReportRepository(session)
        self.outbox = SqlOutbox(session)
        self.inbox = SqlInbox(session, "reports")


class _PlainVersions:
    """Versions read through the driver (current, outside any transaction) and changed in a
    unit of Writes, guarded by the revision that was read: a version changed meanwhile makes
    the commit fail with CONCURRENT_CHANGE, as the ORM's UPDATE does."""

    def __init__(self, reads: SqlReportReads, writes: Writes) -> None:
        self._reads = reads
        self._writes = writes

    async def get(self, report_id: str, version: int | None = None) -> ReportVersion | None:
        return await self._reads.get(report_id, version)

    async def update(self, report: ReportVersion) -> None:
        values, where = _update_values(report)
        self._writes.update(_TABLE.name, values, where, rows=1, refusal=_changed(report))
        self._writes.mark(REPORTS_CHANGED)
        report.revision += 1


class ReportWrites:
    """A signature, submission or partner's answer as one unit of `Writes`, group-committed
    (platform/db.GroupCommit): the version's change, its outbox row and delivery record, its
    processed claims, in one transaction, one hop to the driver thread, the write lock held
    for that hop only. Leaving without `commit` writes nothing."""

    def __init__(
        self, group: GroupCommit, reads: SqlReportReads, seen: Callable[[str], Awaitable[bool]]
    ) -> None:
        """`seen`: whether a reports key was processed (`exchange.store.processed_lookup`)."""
        self._group = group
        self._reads = reads
        self._seen = seen

    async def __aenter__(self) -> Self:
        self._writes = Writes()
        self.reports = _PlainVersions(self._reads, self._writes)
        self.outbox = PlainOutbox(self._writes)
        self.inbox = PlainInbox(self._seen, self._writes, "reports")
        return self

    async def __aexit__(self, *_exception: object) -> None:
        self._writes = Writes()  # what was not committed is dropped

    async def commit(self) -> None:
        await self._group.commit(self._writes)
