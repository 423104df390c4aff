"""Audit records and alerts. Pure domain: no grpc, SQL or NATS."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True)
class AuditEntry:
    """One RPC as the interceptor saw it, before it has a place in the chain."""

    time: datetime
    principal: str
    agency: str
    unit: str
    service: str
    method: str
    resources: tuple[str, ...]
    purpose: str
    outcome: str
    reason: str
    peer: str


@dataclass(frozen=True)
class AuditRecord:
    """An entry at its place in the chain."""

    sequence: int
    entry: AuditEntry
    previous_hash: str
    hash: str


class AlertRule(StrEnum):
    VOLUME_SPIKE = "VOLUME_SPIKE"
    BULK_LOOKUP = "BULK_LOOKUP"
    OUTSIDE_DUTY_HOURS = "OUTSIDE_DUTY_HOURS"
    OUTSIDE_UNIT = "OUTSIDE_UNIT"
    REPEATED_DENIALS = "REPEATED_DENIALS"
    # Raised by the platform itself (justice.audit.alarms), not by the detector.
    EVIDENCE_LOCK_NOT_HELD = "EVIDENCE_LOCK_NOT_HELD"
    EVIDENCE_OBJECT_MISSING = "EVIDENCE_OBJECT_MISSING"
    EVIDENCE_INTEGRITY = "EVIDENCE_INTEGRITY"
    # Raised by the custody service through the platform alarms (not by the detector).
    SEAL_BROKEN = "SEAL_BROKEN"
    QUANTITY_DISCREPANCY = "QUANTITY_DISCREPANCY"
    CHECKOUT_OVERDUE = "CHECKOUT_OVERDUE"
    ITEM_MISSING = "ITEM_MISSING"


@dataclass(frozen=True)
class Alert:
    # Deterministic (rule, principal, window): a replayed feed raises no duplicate.
    id: str
    rule: AlertRule
    principal: str
    agency: str
    unit: str
    summary: str
    create_time: datetime
    first_sequence: int
    last_sequence: int

    @property
    def name(self) -> str:
        return f"alerts/{self.id}"


# How many earlier active windows make up a user's own baseline.
BASELINE_WINDOWS = 24


@dataclass
class Baseline:
    """One user's detection counters: the current window and the calls of earlier active
    windows. Kept with the detector's position in the log, so a restart neither forgets a
    user's baseline nor counts a batch twice."""

    # Index of the current window (record time // window length); -1 before the first call.
    bucket: int = -1
    calls: int = 0
    # Calls of the user's earlier active windows, oldest first, at most BASELINE_WINDOWS.
    history: list[int] = field(default_factory=list)
    # Distinct records looked up in this window; no more kept than the bulk threshold.
    lookups: set[str] = field(default_factory=set)
    denials: int = 0
    first_sequence: int = 0

    def copy(self) -> Baseline:
        return replace(self, history=list(self.history), lookups=set(self.lookups))
