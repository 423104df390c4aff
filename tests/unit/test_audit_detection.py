"""Atypical-use rules: a simulated misuse pattern replayed among normal traffic."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta

from justice.audit.chain import GENESIS_HASH, chain
from justice.audit.detection import Detector, Rules
from justice.audit.model import Alert, AlertRule, AuditEntry, AuditRecord, Baseline

REPORTS = "justice.reports.v1.ReportService"
GET = f"/{REPORTS}/GetReport"
UNIT_A, UNIT_B = "units/pz-antwerpen-a", "units/pz-brussel-b"
# Tuesday 4 March 2025, 08:00 in Brussels (CET, UTC+1).
START = datetime(2025, 3, 4, 7, 0, tzinfo=UTC)
OWNERS = {f"reports/a-{i}": UNIT_A for i in range(100)} | {
    f"reports/b-{i}": UNIT_B for i in range(100)
}
USERS = {
    "officer-a": ("Federal Police", UNIT_A),
    "officer-b": ("Federal Police", UNIT_B),
    "officer-m": ("Federal Police", UNIT_A),
    "prosecutor-antwerp": ("Public Prosecutor's Office", "units/pp-antwerpen"),
}


def rules() -> Rules:
    return Rules(
        window_seconds=300,
        spike_factor=5,
        spike_min_calls=30,
        spike_min_history=3,
        bulk_lookup_distinct=20,
        lookup_methods=frozenset({GET}),
        duty_start=time(7),
        duty_end=time(19),
        timezone="Europe/Brussels",
        duty_hours_by_unit={UNIT_B: (time(6), time(22))},
        denials_per_window=5,
        unit_bound_agencies=frozenset({"Federal Police"}),
    )


def call(at: datetime, who: str, method: str, resource: str, outcome: str = "OK") -> AuditEntry:
    agency, unit = USERS[who]
    return AuditEntry(
        time=at,
        principal=who,
        agency=agency,
        unit=unit,
        service=REPORTS,
        method=method,
        resources=(resource,) if resource else (),
        purpose="investigation",
        outcome=outcome,
        reason="",
        peer="ipv4:10.0.0.1:1",
    )


def normal_day(who: str, own: str, hours: int = 4) -> list[AuditEntry]:
    """Six reads of five of the unit's own reports and a write, every five minutes."""
    entries = []
    for window in range(hours * 12):
        at = START + timedelta(minutes=5 * window)
        for i in range(6):
            entries.append(
                call(at + timedelta(seconds=20 * i), who, "GetReport", f"reports/{own}-{i % 5}")
            )
        entries.append(call(at + timedelta(seconds=150), who, "CreateReport", ""))
    return entries


def misuse() -> list[AuditEntry]:
    """officer-m behaves for three hours, then leaks: the pattern of an officer selling data."""
    entries = normal_day("officer-m", "a", hours=3)
    leak = START + timedelta(hours=3, minutes=1)
    entries += [
        call(leak + timedelta(seconds=i), "officer-m", "GetReport", f"reports/a-{10 + i}")
        for i in range(40)
    ]
    entries.append(call(leak + timedelta(seconds=50), "officer-m", "GetReport", "reports/b-7"))
    entries += [
        call(
            leak + timedelta(seconds=60 + i),
            "officer-m",
            "SubmitReport",
            f"reports/b-{i}",
            "PERMISSION_DENIED",
        )
        for i in range(6)
    ]
    night = START.replace(hour=21, minute=30)  # 22:30 in Brussels
    entries.append(call(night, "officer-m", "GetReport", "reports/a-1"))
    return entries


def prosecutor() -> list[AuditEntry]:
    # Reads across units all day long: not unit-bound, so no unit or duty-hour alerts.
    return [
        call(
            START + timedelta(minutes=7 * i),
            "prosecutor-antwerp",
            "GetReport",
            f"reports/{'ab'[i % 2]}-{i % 5}",
        )
        for i in range(30)
    ] + [call(START.replace(hour=22), "prosecutor-antwerp", "GetReport", "reports/b-1")]


def feed() -> list[AuditRecord]:
    entries = normal_day("officer-a", "a") + normal_day("officer-b", "b") + misuse() + prosecutor()
    # officer-b's unit keeps late hours: 21:00 in Brussels is still on duty there.
    entries.append(call(START.replace(hour=20), "officer-b", "GetReport", "reports/b-2"))
    entries.sort(key=lambda e: e.time)
    return chain(entries, 0, GENESIS_HASH)


async def _owner(resource: str) -> str | None:
    return OWNERS.get(resource)


async def run(
    records: list[AuditRecord], batch: int = 37, baselines: dict[str, Baseline] | None = None
) -> list[Alert]:
    """Feed the records in batches, each against the baselines the one before left behind
    (what AuditService.detect stores between batches)."""
    detector = Detector(rules(), _owner, lambda: START)
    stored = {} if baselines is None else baselines
    alerts = []
    for i in range(0, len(records), batch):
        observed = await detector.observe(records[i : i + batch], stored)
        stored.update(observed.baselines)
        alerts += observed.alerts
    return alerts


async def test_misuse_raises_every_rule_and_normal_users_raise_none() -> None:
    alerts = await run(feed())
    assert {a.principal for a in alerts} == {"officer-m"}
    by_rule = Counter(a.rule for a in {a.id: a for a in alerts}.values())
    assert by_rule == {
        AlertRule.VOLUME_SPIKE: 1,
        AlertRule.BULK_LOOKUP: 1,
        AlertRule.OUTSIDE_UNIT: 1,
        AlertRule.REPEATED_DENIALS: 1,
        AlertRule.OUTSIDE_DUTY_HOURS: 1,
    }
    outside = next(a for a in alerts if a.rule is AlertRule.OUTSIDE_UNIT)
    assert "reports/b-7" in outside.summary
    assert outside.first_sequence == outside.last_sequence
    night = next(a for a in alerts if a.rule is AlertRule.OUTSIDE_DUTY_HOURS)
    assert "22:30" in night.summary


async def test_a_replayed_feed_raises_the_same_alert_ids() -> None:
    records = feed()
    first = {a.id for a in await run(records, batch=500)}
    again = {a.id for a in await run(records, batch=1)}
    assert first == again
    assert len(first) == 5


async def test_no_spike_without_enough_history() -> None:
    burst = chain(
        [call(START + timedelta(seconds=i), "officer-a", "CreateReport", "") for i in range(200)],
        0,
        GENESIS_HASH,
    )
    assert await run(burst) == []


async def test_a_batch_observed_again_from_the_same_baselines_counts_once() -> None:
    denied = chain(
        [
            call(
                START + timedelta(seconds=i),
                "officer-m",
                "SubmitReport",
                f"reports/b-{i}",
                "PERMISSION_DENIED",
            )
            for i in range(4)
        ],
        0,
        GENESIS_HASH,
    )
    detector = Detector(rules(), _owner, lambda: START)
    stored: dict[str, Baseline] = {}
    first = await detector.observe(denied, stored)
    # The store failed: the batch comes again, against the unchanged stored baselines.
    assert stored == {}
    again = await detector.observe(denied, stored)
    assert first.alerts == again.alerts == []
    assert again.baselines["officer-m"].denials == 4
    stored.update(again.baselines)
    one_more = chain(
        [
            call(
                START + timedelta(seconds=10),
                "officer-m",
                "SubmitReport",
                "reports/b-9",
                "PERMISSION_DENIED",
            )
        ],
        4,
        denied[-1].hash,
    )
    alerts = (await detector.observe(one_more, stored)).alerts
    assert [a.rule for a in alerts] == [AlertRule.REPEATED_DENIALS]
    assert stored["officer-m"].denials == 4  # observe returns copies


async def test_lookups_are_counted_up_to_the_threshold_only() -> None:
    many = chain(
        [
            call(START + timedelta(milliseconds=i), "officer-m", "GetReport", f"reports/a-{i}")
            for i in range(60)
        ],
        0,
        GENESIS_HASH,
    )
    stored: dict[str, Baseline] = {}
    alerts = await run(many, baselines=stored)
    assert [a.rule for a in alerts if a.rule is AlertRule.BULK_LOOKUP] == [AlertRule.BULK_LOOKUP]
    assert len(stored["officer-m"].lookups) == rules().bulk_lookup_distinct
