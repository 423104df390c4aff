"""Platform alerts (evidence S3 faults): stored once per fault, announced once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Self

from justice.audit.alarms import PLATFORM, PlatformAlarms
from justice.audit.model import Alert, AlertRule


class _Alerts:
    def __init__(self) -> None:
        self.stored: dict[str, Alert] = {}

    async def add_new(self, alerts: Sequence[Alert]) -> list[Alert]:
        fresh = [a for a in alerts if a.id not in self.stored]
        self.stored.update({a.id: a for a in fresh})
        return fresh


class _Transaction:
    def __init__(self, alerts: _Alerts) -> None:
        self.alerts = alerts

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def commit(self) -> None:
        return None


async def test_the_same_fault_is_one_alert_announced_once() -> None:
    alerts = _Alerts()
    announced: list[Alert] = []

    async def publish(fresh: list[Alert]) -> None:
        announced.extend(fresh)

    alarms = PlatformAlarms(
        lambda: _Transaction(alerts), lambda: datetime(2026, 12, 1, tzinfo=UTC), publish
    )
    for _ in range(2):
        await alarms.raise_alert("EVIDENCE_LOCK_NOT_HELD", "uploads/abc", "held no lock")
    await alarms.raise_alert("EVIDENCE_OBJECT_MISSING", "evidence/x", "version gone")
    assert [a.rule for a in announced] == [
        AlertRule.EVIDENCE_LOCK_NOT_HELD,
        AlertRule.EVIDENCE_OBJECT_MISSING,
    ]
    assert len(alerts.stored) == 2
    assert {a.principal for a in announced} == {PLATFORM}


async def test_an_alert_that_cannot_be_announced_is_still_stored() -> None:
    alerts = _Alerts()

    async def down(fresh: list[Alert]) -> None:
        raise ConnectionError("nats down")

    alarms = PlatformAlarms(lambda: _Transaction(alerts), lambda: datetime.now(UTC), down)
    await alarms.raise_alert("EVIDENCE_INTEGRITY", "evidence/y", "MISMATCH")
    assert [a.rule for a in alerts.stored.values()] == [AlertRule.EVIDENCE_INTEGRITY]
