"""Audit use cases on an in-memory unit of work (tests/fakes/audit.py): chain verification
over a stored log, and detection that stores alerts, baselines and the cursor together."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta

import pytest

from justice.audit.chain import GENESIS_HASH, ChainProblem, chain
from justice.audit.detection import Detector, Rules
from justice.audit.model import AlertRule, AuditEntry
from justice.audit.service import AccessQuery, AuditService
from justice.audit.tail import Batch, CursorMoved
from justice.platform.errors import InvalidArgument
from justice.platform.listing import Page
from tests.fakes.audit import AuditTables, AuditUnit
from tests.fakes.unit_of_work import Tables

# Tuesday 4 March 2025, 02:00 in Brussels: outside everyone's duty hours.
NIGHT = datetime(2025, 3, 4, 1, 0, tzinfo=UTC)
RULES = Rules(
    window_seconds=300,
    spike_factor=5,
    spike_min_calls=1000,
    spike_min_history=3,
    bulk_lookup_distinct=1000,
    lookup_methods=frozenset({"/justice.reports.v1.ReportService/GetReport"}),
    duty_start=time(7),
    duty_end=time(19),
    timezone="Europe/Brussels",
    duty_hours_by_unit={},
    denials_per_window=1000,
    unit_bound_agencies=frozenset({"Federal Police"}),
)


class UnusedSigner:
    async def sign(self, document: bytes, signer_id: str) -> bytes:
        raise AssertionError("nothing here signs")


def entry(n: int, principal: str = "officer-1001") -> AuditEntry:
    return AuditEntry(
        time=NIGHT + timedelta(seconds=n),
        principal=principal,
        agency="Federal Police",
        unit="units/a",
        service="justice.reports.v1.ReportService",
        method="GetReport",
        resources=(f"reports/{n}",),
        purpose="investigation",
        outcome="OK",
        reason="",
        peer="ipv4:10.0.0.1:1",
    )


def _service(tables: Tables[AuditTables]) -> AuditService:
    async def owner(resource: str) -> str | None:
        return "units/a"

    return AuditService(
        uow=lambda: AuditUnit(tables),
        signer=UnusedSigner(),
        signer_id="justice-server",
        clock=lambda: NIGHT,
        detector=Detector(RULES, owner, lambda: NIGHT),
    )


def _log(count: int) -> Tables[AuditTables]:
    return Tables(AuditTables(records=chain([entry(n) for n in range(count)], 0, GENESIS_HASH)))


async def test_a_changed_record_breaks_the_chain_where_it_was_changed() -> None:
    tables = _log(10)
    service = _service(tables)
    intact = await service.verify_chain(0, 0)
    assert (intact.intact, intact.checked, intact.head_sequence) == (True, 10, 10)
    record = tables.state.records[6]
    tables.state.records[6] = dataclasses.replace(
        record, entry=dataclasses.replace(record.entry, principal="someone-else")
    )
    broken = await service.verify_chain(0, 0)
    assert (broken.problem, broken.broken_at) == (ChainProblem.HASH_MISMATCH, 7)
    # A range before the change still verifies, linked to the record before it.
    assert (await service.verify_chain(2, 6)).intact


async def test_access_queries_take_exactly_one_subject() -> None:
    service = _service(_log(3))
    for resource, principal in [(None, None), ("reports/1", "officer-1001")]:
        with pytest.raises(InvalidArgument):
            await service.query_access(AccessQuery(resource, principal, None, None, Page(10, "")))
    found = await service.query_access(AccessQuery("reports/1", None, None, None, Page(10, "")))
    assert [r.sequence for r in found] == [2]


async def test_detection_stores_alerts_baselines_and_cursor_together_once() -> None:
    tables = _log(4)
    service = _service(tables)
    batch = Batch(tail="detector", cursor=0, records=tables.state.records)
    fresh = await service.detect(batch)
    assert {a.rule for a in fresh} == {AlertRule.OUTSIDE_DUTY_HOURS}
    assert tables.state.cursors == {"detector": 4}
    assert set(tables.state.baselines) == {"officer-1001"}
    stored = dict(tables.state.alerts)
    # The same batch again: the cursor moved past it, so nothing of it is stored twice.
    with pytest.raises(CursorMoved):
        await service.detect(batch)
    assert tables.state.alerts == stored
    assert tables.state.cursors == {"detector": 4}
