"""Misuse detection end to end, through the real server: an officer leaking data among
colleagues at work. Each rule's alert is in ListAlerts and on the NATS alert subject within
seconds; the colleagues and the auditor raise none."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time

import grpc
import nats
import pytest

from justice.audit.publisher import ALERT_SUBJECT
from justice.audit.v1 import audit_pb2 as apb
from justice.audit.v1 import audit_pb2_grpc
from justice.devstack.nats import NatsServer
from justice.platform.config import AuditDetection, Settings
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from justice.security.principal import Role
from tests.api.conftest import ChannelFactory, Enrol
from tests.builders import create
from tests.eventually import eventually

PURPOSE = (("x-justice-purpose", "investigation PV/2025/0077"),)
WINDOW = 2  # seconds
RULES = {"VOLUME_SPIKE", "BULK_LOOKUP", "OUTSIDE_DUTY_HOURS", "OUTSIDE_UNIT", "REPEATED_DENIALS"}
MISUSER = "officer-leak"
COLLEAGUES = {"officer-a1": "unit-a", "officer-a2": "unit-a", "officer-b1": "unit-b"}


def _hour(offset: int) -> clock_time:
    return (datetime.now(UTC) + timedelta(hours=offset)).time().replace(second=0, microsecond=0)


@pytest.fixture(scope="module")
def alert_nats(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[NatsServer]:
    with NatsServer(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture(scope="module")
def settings(settings: Settings, alert_nats: NatsServer) -> Settings:
    return settings.updated(
        exchange={"relay": False, "inbound": False},
        audit={
            # Small thresholds, so a test-sized misuse trips them; duty round the clock but in
            # the leaking officer's unit, which is off duty right now.
            "detection": AuditDetection(
                window_seconds=WINDOW,
                spike_factor=3.0,
                spike_min_calls=12,
                spike_min_history=2,
                bulk_lookup_distinct=8,
                denials_per_window=4,
                duty_start=clock_time(0),
                duty_end=clock_time(0),
                timezone="UTC",
                duty_hours_by_unit={"unit-m": (_hour(2), _hour(3))},
                unit_bound_agencies=["Test Agency"],
            ),
        },
    ).model_copy(update={"nats_url": alert_nats.url})


@pytest.fixture(scope="module")
async def people(enrol: Enrol) -> None:
    await enrol(MISUSER, frozenset({Role.REPORT_WRITER}), unit="unit-m", unit_name="Unit M")
    for user, unit in COLLEAGUES.items():
        name = f"Unit {unit[-1].upper()}"
        await enrol(user, frozenset({Role.REPORT_WRITER}), unit=unit, unit_name=name)


@pytest.fixture(scope="module")
async def stubs(
    people: None, grpc_create_channel: ChannelFactory
) -> AsyncIterator[dict[str, reports_pb2_grpc.ReportServiceStub]]:
    channels = {user: grpc_create_channel(principal=user) for user in [MISUSER, *COLLEAGUES]}
    yield {user: reports_pb2_grpc.ReportServiceStub(c) for user, c in channels.items()}
    for channel in channels.values():
        await channel.close()


async def _create(stub: reports_pb2_grpc.ReportServiceStub, n: int) -> str:
    return (await create(stub, case_number=f"AN.12.L1.{n:06d}/25", reporting_unit="")).name


async def _at_window_start() -> None:
    # The burst must fall in one window (windows follow record time).
    await asyncio.sleep(WINDOW - time.time() % WINDOW + 0.05)


async def _colleague(
    stub: reports_pb2_grpc.ReportServiceStub, own: list[str], stop: asyncio.Event
) -> None:
    """Reads the unit's own reports, a couple per window, with a purpose: ordinary work."""
    n = 0
    while not stop.is_set():
        await stub.GetReport(pb.GetReportRequest(name=own[n % len(own)]), metadata=PURPOSE)
        n += 1
        await asyncio.sleep(0.5)


async def _leak(stub: reports_pb2_grpc.ReportServiceStub, others: list[str]) -> None:
    # Two ordinary windows first: a baseline of two calls each.
    for _ in range(2):
        await _at_window_start()
        for _ in range(2):
            await stub.ListReports(pb.ListReportsRequest(page_size=1), metadata=PURPOSE)
    # Then, in one window: another unit's cases one after the other (each refused), and more.
    await _at_window_start()
    for name in others:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetReport(pb.GetReportRequest(name=name), metadata=PURPOSE)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for _ in range(10):
        await stub.ListReports(pb.ListReportsRequest(page_size=1), metadata=PURPOSE)


async def _alerts(auditor: audit_pb2_grpc.AuditServiceStub) -> list[apb.Alert]:
    return list((await auditor.ListAlerts(apb.ListAlertsRequest(page_size=500))).alerts)


async def test_a_leaking_officer_raises_every_alert_and_colleagues_none(
    stubs: dict[str, reports_pb2_grpc.ReportServiceStub],
    auditor: audit_pb2_grpc.AuditServiceStub,
    alert_nats: NatsServer,
) -> None:
    announced: list[apb.Alert] = []
    listener = await nats.connect(alert_nats.url)

    async def heard(message: nats.aio.msg.Msg) -> None:
        announced.append(apb.Alert.FromString(message.data))

    await listener.subscribe(ALERT_SUBJECT, cb=heard)
    await listener.flush()
    try:
        unit_a = [await _create(stubs["officer-a1"], n) for n in range(10)]
        unit_b = [await _create(stubs["officer-b1"], 100 + n) for n in range(3)]
        stop = asyncio.Event()
        colleagues = [
            asyncio.create_task(_colleague(stubs["officer-a1"], unit_a[:3], stop)),
            asyncio.create_task(_colleague(stubs["officer-a2"], unit_a[3:6], stop)),
            asyncio.create_task(_colleague(stubs["officer-b1"], unit_b, stop)),
        ]
        try:
            await _leak(stubs[MISUSER], unit_a)
            leaked = time.monotonic()

            async def all_rules() -> list[apb.Alert] | None:
                alerts = await _alerts(auditor)
                mine = {a.rule for a in alerts if a.principal == MISUSER}
                return alerts if mine == RULES else None

            alerts = await eventually(all_rules, within=10, what="an alert for every rule")
            assert time.monotonic() - leaked < 5.0
            # The colleagues keep working a little longer, and still raise nothing.
            await asyncio.sleep(WINDOW)
        finally:
            stop.set()
            await asyncio.gather(*colleagues)
        alerts = await _alerts(auditor)
        assert {a.principal for a in alerts} == {MISUSER}
        assert {a.unit for a in alerts} == {"unit-m"}
        outside = [a for a in alerts if a.rule == "OUTSIDE_UNIT"]
        assert len(outside) == len(unit_a)
        assert all("unit-a" in a.summary for a in outside)

        heard_rules = await eventually(
            lambda: _rules_of(announced), within=5, what="alerts on NATS"
        )
        assert heard_rules == RULES
        assert {a.principal for a in announced} == {MISUSER}
        assert {a.name for a in announced} <= {a.name for a in alerts}
    finally:
        await listener.close()


async def _rules_of(announced: list[apb.Alert]) -> set[str] | None:
    rules = {a.rule for a in announced}
    return rules if rules == RULES else None
