"""Atypical-use detection: rules over the audit records, in sequence order.

The detector is fed from the audit log itself (see tail.py): the database is the source of
truth, every replica's records are in it in chain order. Windows follow record time, not wall
time, so a replayed feed raises the same alerts, and each alert's id is derived from (rule,
principal, window): raising it twice is a no-op.

The detector keeps no counters of its own between batches: each batch is observed against the
users' stored baselines and returns the changed ones, which the caller stores in the same
transaction that moves the detector's cursor (AuditService.detect). A restart resumes with the
same counters; a batch whose results were not stored is observed again from the stored ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from justice.audit.model import BASELINE_WINDOWS, Alert, AlertRule, AuditRecord, Baseline
from justice.audit.personal_data import full_method

_MAX_OWNERS = 10_000

# Resolves the unit id that owns a resource ("reports/x" -> "pz-antwerpen-team-a"), in the
# terms of AuditEntry.unit; None if unknown.
UnitOf = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True)
class Rules:
    window_seconds: int
    # Volume spike: calls in a window against the mean of the user's own earlier active windows.
    spike_factor: float
    spike_min_calls: int
    spike_min_history: int
    # Bulk lookups: distinct persons/plates/records read through lookup methods in one window.
    bulk_lookup_distinct: int
    lookup_methods: frozenset[str]
    # Duty hours, local time; per unit where a unit keeps other hours.
    duty_start: time
    duty_end: time
    timezone: str
    duty_hours_by_unit: dict[str, tuple[time, time]]
    # Denied calls in one window.
    denials_per_window: int
    # Agencies whose members work in units with duty hours and own their cases.
    unit_bound_agencies: frozenset[str]


@dataclass(frozen=True)
class Observation:
    alerts: list[Alert]
    # The baselines of the users seen in the batch, as they stand after it.
    baselines: dict[str, Baseline]


def alert_id(rule: AlertRule, principal: str, scope: str) -> str:
    return hashlib.sha256(f"{rule}|{principal}|{scope}".encode()).hexdigest()[:32]


def _on_duty(moment: time, start: time, end: time) -> bool:
    if start == end:
        return True  # round the clock
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end  # a night shift crosses midnight


class Detector:
    def __init__(self, rules: Rules, unit_of: UnitOf, clock: Callable[[], datetime]) -> None:
        self._rules = rules
        self._unit_of = unit_of
        self._clock = clock
        self._zone = ZoneInfo(rules.timezone)
        # A cache only: which unit owns a resource does not change.
        self._owners: dict[str, str] = {}

    async def observe(
        self, records: Iterable[AuditRecord], baselines: Mapping[str, Baseline]
    ) -> Observation:
        """The alerts the records raise, given the users' baselines before them (not changed:
        the ones returned are copies)."""
        alerts: list[Alert] = []
        changed: dict[str, Baseline] = {}
        for record in records:
            who = record.entry.principal
            if not who:
                continue
            if who not in changed:
                known = baselines.get(who)
                changed[who] = known.copy() if known is not None else Baseline()
            alerts += await self._observe(record, changed[who])
        return Observation(alerts, changed)

    def _raise(
        self, rule: AlertRule, record: AuditRecord, scope: str, summary: str, first: int
    ) -> Alert:
        e = record.entry
        return Alert(
            id=alert_id(rule, e.principal, scope),
            rule=rule,
            principal=e.principal,
            agency=e.agency,
            unit=e.unit,
            summary=summary,
            create_time=self._clock(),
            first_sequence=first,
            last_sequence=record.sequence,
        )

    async def _observe(self, record: AuditRecord, state: Baseline) -> list[Alert]:
        rules, e = self._rules, record.entry
        bucket = int(e.time.timestamp()) // rules.window_seconds
        if bucket != state.bucket:
            if state.calls:
                state.history = [*state.history, state.calls][-BASELINE_WINDOWS:]
            state.bucket, state.calls, state.denials = bucket, 0, 0
            state.lookups = set()
            state.first_sequence = record.sequence
        state.calls += 1
        window = f"window {bucket}"
        alerts: list[Alert] = []

        if len(state.history) >= rules.spike_min_history:
            baseline = sum(state.history) / len(state.history)
            threshold = max(rules.spike_min_calls, rules.spike_factor * baseline)
            if state.calls == int(threshold) + 1:
                alerts.append(
                    self._raise(
                        AlertRule.VOLUME_SPIKE,
                        record,
                        window,
                        f"{state.calls} calls within {rules.window_seconds}s; "
                        f"own baseline {baseline:.1f} per window",
                        state.first_sequence,
                    )
                )

        method = full_method(e.service, e.method)
        lookup = method in rules.lookup_methods
        if lookup:
            before = len(state.lookups)
            # Counting stops at the threshold: the alert is raised once per window.
            for resource in e.resources:
                if len(state.lookups) >= rules.bulk_lookup_distinct:
                    break
                state.lookups.add(resource)
            if before < rules.bulk_lookup_distinct <= len(state.lookups):
                alerts.append(
                    self._raise(
                        AlertRule.BULK_LOOKUP,
                        record,
                        window,
                        f"{len(state.lookups)} distinct records looked up "
                        f"within {rules.window_seconds}s",
                        state.first_sequence,
                    )
                )

        if e.outcome == "PERMISSION_DENIED":
            state.denials += 1
            if state.denials == rules.denials_per_window:
                alerts.append(
                    self._raise(
                        AlertRule.REPEATED_DENIALS,
                        record,
                        window,
                        f"{state.denials} calls refused (PERMISSION_DENIED) "
                        f"within {rules.window_seconds}s",
                        state.first_sequence,
                    )
                )

        if lookup and e.agency in rules.unit_bound_agencies:
            local = e.time.astimezone(self._zone)
            start, end = rules.duty_hours_by_unit.get(e.unit, (rules.duty_start, rules.duty_end))
            if not _on_duty(local.time(), start, end):
                alerts.append(
                    self._raise(
                        AlertRule.OUTSIDE_DUTY_HOURS,
                        record,
                        f"day {local.date().isoformat()}",
                        f"{e.method} at {local.strftime('%H:%M')} local time, outside duty "
                        f"hours {start.strftime('%H:%M')}-{end.strftime('%H:%M')}",
                        record.sequence,
                    )
                )
            alerts += await self._outside_unit(record)
        return alerts

    async def _outside_unit(self, record: AuditRecord) -> Sequence[Alert]:
        e = record.entry
        alerts = []
        for resource in e.resources:
            owner = self._owners.get(resource)
            if owner is None:
                # Unknown owners are asked again next time: the record may not exist yet.
                owner = await self._unit_of(resource)
                if owner is not None:
                    if len(self._owners) >= _MAX_OWNERS:
                        self._owners.clear()
                    self._owners[resource] = owner
            if owner and owner != e.unit:
                alerts.append(
                    self._raise(
                        AlertRule.OUTSIDE_UNIT,
                        record,
                        f"resource {resource}",
                        f"{e.method} of {resource}, owned by unit {owner!r}, from unit {e.unit!r}",
                        record.sequence,
                    )
                )
        return alerts
