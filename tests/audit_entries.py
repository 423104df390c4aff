"""Audit entries for tests that write the log directly: a report read by an officer."""

from __future__ import annotations

from datetime import UTC, datetime

from justice.audit.model import AuditEntry


def entry(n: int, principal: str = "officer-1001") -> AuditEntry:
    return AuditEntry(
        time=datetime(2025, 3, 4, 10, 0, n % 60, n, tzinfo=UTC),
        principal=principal,
        agency="Federal Police",
        unit="units/pz-antwerpen-a",
        service="justice.reports.v1.ReportService",
        method="GetReport",
        resources=(f"reports/r{n}",),
        purpose="investigation PV/2025/1",
        outcome="OK",
        reason="",
        peer="ipv4:127.0.0.1:5000",
    )
