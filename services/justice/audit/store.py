"""Audit tables and queries (sqlmodel). Only the audit service reads these tables."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, Text, func, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from justice.audit.chain import GENESIS_HASH, chain
from justice.audit.model import Alert, AlertRule, AuditEntry, AuditRecord, Baseline
from justice.platform.db import DriverConnection, Transaction, UtcDateTime


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit_record"
    __table_args__ = (
        Index("ix_audit_record_principal", "principal", "time"),
        Index("ix_audit_record_resource", "resource", "time"),
        Index("ix_audit_record_time", "time"),
    )

    # Assigned by the writer, never by the database: the chain decides the order.
    sequence: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    time: datetime = Field(sa_type=UtcDateTime)
    principal: str = Field(max_length=128)
    agency: str = Field(max_length=128)
    unit: str = Field(max_length=128)
    service: str = Field(max_length=128)
    method: str = Field(max_length=64)
    # The first resource, indexed for "who consulted X"; all of them, as JSON, in `resources`.
    resource: str = Field(max_length=255)
    resources: str = Field(sa_column=Column(Text, nullable=False))
    purpose: str = Field(max_length=255)
    outcome: str = Field(max_length=32)
    reason: str = Field(max_length=64)
    peer: str = Field(max_length=128)
    previous_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditCursorRow(SQLModel, table=True):
    """How far each consumer of the log (publisher, detector) has got."""

    __tablename__ = "audit_cursor"

    name: str = Field(primary_key=True, max_length=32)
    sequence: int = Field(sa_column=Column(BigInteger, nullable=False))


class BaselineRow(SQLModel, table=True):
    """Each user's detection counters, moved in the transaction that moves the detector's
    cursor (see detection.py)."""

    __tablename__ = "audit_baseline"

    principal: str = Field(primary_key=True, max_length=128)
    bucket: int = Field(sa_column=Column(BigInteger, nullable=False))
    calls: int = Field(sa_column=Column(Integer, nullable=False))
    # JSON lists: the earlier windows' call counts, the distinct lookups of this window.
    history: str = Field(sa_column=Column(Text, nullable=False))
    lookups: str = Field(sa_column=Column(Text, nullable=False))
    denials: int = Field(sa_column=Column(Integer, nullable=False))
    first_sequence: int = Field(sa_column=Column(BigInteger, nullable=False))


class AlertRow(SQLModel, table=True):
    __tablename__ = "audit_alert"
    __table_args__ = (Index("ix_audit_alert_created", "create_time", "id"),)

    id: str = Field(primary_key=True, max_length=64)
    rule: str = Field(max_length=32)
    principal: str = Field(max_length=128, index=True)
    agency: str = Field(max_length=128)
    unit: str = Field(max_length=128)
    summary: str = Field(sa_column=Column(Text, nullable=False))
    create_time: datetime = Field(sa_type=UtcDateTime)
    first_sequence: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_sequence: int = Field(sa_column=Column(BigInteger, nullable=False))


_RECORDS = AuditRow.__table__  # type: ignore[attr-defined]


def row_values(record: AuditRecord) -> dict[str, Any]:
    e = record.entry
    return {
        "sequence": record.sequence,
        "time": e.time,
        "principal": e.principal,
        "agency": e.agency,
        "unit": e.unit,
        "service": e.service,
        "method": e.method,
        "resource": e.resources[0] if e.resources else "",
        "resources": json.dumps(list(e.resources), ensure_ascii=False),
        "purpose": e.purpose,
        "outcome": e.outcome,
        "reason": e.reason,
        "peer": e.peer,
        "previous_hash": record.previous_hash,
        "hash": record.hash,
    }


def to_record(row: Any) -> AuditRecord:
    """From an AuditRow, or a row of its table's columns."""
    entry = AuditEntry(
        time=row.time,
        principal=row.principal,
        agency=row.agency,
        unit=row.unit,
        service=row.service,
        method=row.method,
        resources=tuple(json.loads(row.resources)),
        purpose=row.purpose,
        outcome=row.outcome,
        reason=row.reason,
        peer=row.peer,
    )
    return AuditRecord(row.sequence, entry, row.previous_hash, row.hash)


_HEAD = "SELECT sequence, hash FROM audit_record ORDER BY sequence DESC LIMIT 1"


def append_chained(
    connection: DriverConnection, entries: Sequence[AuditEntry], lock: int
) -> list[AuditRecord]:
    """Chain `entries` onto the log's head and insert them, in the caller's transaction.

    The head is read under the lock that serialises all writers (PostgreSQL: the advisory
    `lock`; SQLite: the write lock DriverThread takes first), so no other writer can take
    the next sequence meanwhile.
    """
    if connection.backend == "postgresql":
        # Advisory locks are per database, not per schema: keyed by the schema too, or logs
        # in other schemas of the database (tenants, test runs) queue here.
        connection.one(
            "SELECT pg_advisory_xact_lock(:key # hashtext(current_schema()))", {"key": lock}
        )
    head = connection.one(_HEAD)
    sequence, digest = (0, "") if head is None else (int(head[0]), str(head[1]))
    records = chain(list(entries), sequence, digest or GENESIS_HASH)
    insert_records(connection, records)
    return records


def insert_records(connection: DriverConnection, records: Sequence[AuditRecord]) -> None:
    """Chained records into `audit_record`, their times as the ORM stores them."""
    rows = [row_values(r) for r in records]
    for row in rows:
        row["time"] = connection.time(row["time"])
    connection.insert_rows("audit_record", rows)


class SqlAuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def after(self, sequence: int, limit: int, until: int = 0) -> list[AuditRecord]:
        """Records with a sequence above `sequence` (and at most `until` when given), in order."""
        query = core_select(_RECORDS).where(_RECORDS.c.sequence > sequence)
        if until:
            query = query.where(_RECORDS.c.sequence <= until)
        return await self._records(query.order_by(_RECORDS.c.sequence).limit(limit))

    async def _records(self, query: Any) -> list[AuditRecord]:
        # Plain rows, not ORM objects: the tails and exports read thousands at a time.
        return [to_record(r) for r in (await self._session.exec(query)).all()]

    async def at(self, sequence: int) -> AuditRecord | None:
        row = await self._session.get(AuditRow, sequence)
        return to_record(row) if row else None

    async def head(self) -> int:
        value = (await self._session.exec(select(func.max(AuditRow.sequence)))).one()
        return int(value or 0)

    async def access(
        self,
        *,
        resource: str | None,
        principal: str | None,
        start: datetime | None,
        end: datetime | None,
        after: int,
        limit: int,
    ) -> list[AuditRecord]:
        query = core_select(_RECORDS).where(_RECORDS.c.sequence > after)
        if resource is not None:
            query = query.where(_RECORDS.c.resource == resource)
        if principal is not None:
            query = query.where(_RECORDS.c.principal == principal)
        if start is not None:
            query = query.where(_RECORDS.c.time >= start)
        if end is not None:
            query = query.where(_RECORDS.c.time < end)
        return await self._records(query.order_by(_RECORDS.c.sequence).limit(limit))

    async def cursor(self, name: str) -> int:
        row = await self._session.get(AuditCursorRow, name)
        return row.sequence if row else 0

    async def advance_cursor(self, name: str, expected: int, to: int) -> bool:
        """Compare-and-set: False when the cursor is no longer at `expected` (another
        replica's consumer moved it); the caller then rolls back and reads it again."""
        table = AuditCursorRow.__table__  # type: ignore[attr-defined]
        moved = await self._session.exec(
            update(table)
            .where(table.c.name == name, table.c.sequence == expected)
            .values(sequence=to)
        )
        if moved.rowcount == 1:
            return True
        if expected != 0:
            return False
        created = await self._session.exec(
            _insert(self._session)(table)
            .values(name=name, sequence=to)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(table.c.name)
        )
        return created.first() is not None


def _insert(session: AsyncSession) -> Any:
    """INSERT ... ON CONFLICT for the session's dialect."""
    dialect = session.bind.dialect.name if session.bind else ""
    return pg_insert if dialect == "postgresql" else sqlite_insert


class SqlBaselineRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def of(self, principals: Collection[str]) -> dict[str, Baseline]:
        if not principals:
            return {}
        rows = await self._session.exec(
            select(BaselineRow).where(col(BaselineRow.principal).in_(list(principals)))
        )
        return {
            row.principal: Baseline(
                bucket=row.bucket,
                calls=row.calls,
                history=[int(n) for n in json.loads(row.history)],
                lookups={str(r) for r in json.loads(row.lookups)},
                denials=row.denials,
                first_sequence=row.first_sequence,
            )
            for row in rows.all()
        }

    async def save(self, baselines: Mapping[str, Baseline]) -> None:
        if not baselines:
            return
        values = [
            {
                "principal": principal,
                "bucket": b.bucket,
                "calls": b.calls,
                "history": json.dumps(b.history),
                "lookups": json.dumps(sorted(b.lookups), ensure_ascii=False),
                "denials": b.denials,
                "first_sequence": b.first_sequence,
            }
            for principal, b in baselines.items()
        ]
        statement = _insert(self._session)(BaselineRow)
        columns = ("bucket", "calls", "history", "lookups", "denials", "first_sequence")
        # One cached statement, many parameter sets (a VALUES list would compile every time).
        await self._session.exec(
            statement.on_conflict_do_update(
                index_elements=["principal"],
                set_={name: statement.excluded[name] for name in columns},
            ),
            params=values,
        )


def _alert(row: AlertRow) -> Alert:
    return Alert(
        id=row.id,
        rule=AlertRule(row.rule),
        principal=row.principal,
        agency=row.agency,
        unit=row.unit,
        summary=row.summary,
        create_time=row.create_time,
        first_sequence=row.first_sequence,
        last_sequence=row.last_sequence,
    )


class SqlAlertRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_new(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Insert the alerts not stored yet; return those that were new. Idempotent by id:
        an alert raised again (a replayed batch, another replica) is a quiet no-op."""
        unique = {a.id: a for a in alerts}
        if not unique:
            return []
        values = [
            {
                "id": a.id,
                "rule": a.rule.value,
                "principal": a.principal,
                "agency": a.agency,
                "unit": a.unit,
                "summary": a.summary,
                "create_time": a.create_time,
                "first_sequence": a.first_sequence,
                "last_sequence": a.last_sequence,
            }
            for a in unique.values()
        ]
        inserted = await self._session.exec(
            _insert(self._session)(AlertRow)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(col(AlertRow.id)),
            params=values,
        )
        fresh = {str(row[0]) for row in inserted.all()}
        return [a for a in unique.values() if a.id in fresh]

    async def count(self) -> int:
        return int((await self._session.exec(select(func.count()).select_from(AlertRow))).one())

    async def list(
        self,
        *,
        principal: str | None,
        rule: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Alert]:
        query = select(AlertRow)
        if principal is not None:
            query = query.where(col(AlertRow.principal) == principal)
        if rule is not None:
            query = query.where(col(AlertRow.rule) == rule)
        if after is not None:
            moment, alert_id = after
            query = query.where(
                (col(AlertRow.create_time) < moment)
                | ((col(AlertRow.create_time) == moment) & (col(AlertRow.id) < alert_id))
            )
        query = query.order_by(col(AlertRow.create_time).desc(), col(AlertRow.id).desc()).limit(
            limit
        )
        return [_alert(r) for r in (await self._session.exec(query)).all()]


class AuditTransaction(Transaction):
    """One transaction over the audit tables."""

    def bind(self, session: AsyncSession) -> None:
        self.records = SqlAuditRepository(session)
        self.alerts = SqlAlertRepository(session)
        self.baselines = SqlBaselineRepository(session)
