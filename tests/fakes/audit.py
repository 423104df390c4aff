"""The audit domain's unit of work in memory: the chained records, the consumers' cursors,
the alerts and the users' baselines."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from justice.audit.model import Alert, AuditRecord, Baseline
from tests.fakes.unit_of_work import InMemoryUnitOfWork


@dataclass
class AuditTables:
    records: list[AuditRecord] = field(default_factory=list)
    cursors: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    baselines: dict[str, Baseline] = field(default_factory=dict)


class InMemoryRecords:
    def __init__(self, tables: AuditTables) -> None:
        self._t = tables

    async def at(self, sequence: int) -> AuditRecord | None:
        return next((r for r in self._t.records if r.sequence == sequence), None)

    async def head(self) -> int:
        return self._t.records[-1].sequence if self._t.records else 0

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
        return [
            r
            for r in self._t.records
            if r.sequence > after
            and (resource is None or resource in r.entry.resources)
            and principal in (None, r.entry.principal)
            and (start is None or r.entry.time >= start)
            and (end is None or r.entry.time < end)
        ][:limit]

    async def after(self, sequence: int, limit: int, until: int = 0) -> list[AuditRecord]:
        return [
            r
            for r in self._t.records
            if r.sequence > sequence and (not until or r.sequence <= until)
        ][:limit]

    async def cursor(self, name: str) -> int:
        return self._t.cursors.get(name, 0)

    async def advance_cursor(self, name: str, expected: int, to: int) -> bool:
        if self._t.cursors.get(name, 0) != expected:
            return False
        self._t.cursors[name] = to
        return True


class InMemoryAlerts:
    def __init__(self, tables: AuditTables) -> None:
        self._rows = tables.alerts

    async def add_new(self, alerts: Sequence[Alert]) -> list[Alert]:
        fresh = [a for a in alerts if a.id not in self._rows]
        self._rows.update((a.id, a) for a in fresh)
        return fresh

    async def count(self) -> int:
        return len(self._rows)

    async def list(
        self,
        *,
        principal: str | None,
        rule: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Alert]:
        ordered = sorted(self._rows.values(), key=lambda a: (a.create_time, a.id))
        return [
            a
            for a in ordered
            if principal in (None, a.principal)
            and rule in (None, a.rule)
            and (after is None or (a.create_time, a.id) > after)
        ][:limit]


class InMemoryBaselines:
    def __init__(self, tables: AuditTables) -> None:
        self._rows = tables.baselines

    async def of(self, principals: Collection[str]) -> dict[str, Baseline]:
        return {p: self._rows[p] for p in principals if p in self._rows}

    async def save(self, baselines: Mapping[str, Baseline]) -> None:
        self._rows.update(baselines)


class AuditUnit(InMemoryUnitOfWork[AuditTables]):
    @property
    def records(self) -> InMemoryRecords:
        return InMemoryRecords(self.staged)

    @property
    def alerts(self) -> InMemoryAlerts:
        return InMemoryAlerts(self.staged)

    @property
    def baselines(self) -> InMemoryBaselines:
        return InMemoryBaselines(self.staged)
