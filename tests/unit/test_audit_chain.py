"""The hash chain and what the interceptor takes from a request (ids only)."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime

import pytest

from justice.audit.chain import GENESIS_HASH, ChainProblem, ChainVerifier, chain
from justice.audit.interceptor import MALFORMED, resources_of
from justice.audit.model import AuditEntry
from justice.audit.v1 import audit_pb2 as apb
from justice.reports.v1 import reports_pb2 as pb


def entry(n: int) -> AuditEntry:
    return AuditEntry(
        time=datetime(2025, 1, 1, 12, 0, n, tzinfo=UTC),
        principal="officer-1001",
        agency="Federal Police",
        unit="units/a",
        service="justice.reports.v1.ReportService",
        method="GetReport",
        resources=(f"reports/{n}",),
        purpose="x-1",
        outcome="OK",
        reason="",
        peer="ipv4:127.0.0.1:1",
    )


def test_each_hash_covers_the_previous_one() -> None:
    records = chain([entry(n) for n in range(5)], 0, GENESIS_HASH)
    assert [r.sequence for r in records] == [1, 2, 3, 4, 5]
    assert records[0].previous_hash == GENESIS_HASH
    assert all(b.previous_hash == a.hash for a, b in itertools.pairwise(records))
    continued = chain([entry(5)], 5, records[-1].hash)
    verifier = ChainVerifier()
    assert verifier.feed(records)
    assert verifier.feed(continued)
    assert verifier.result().head_sequence == 6


@pytest.mark.parametrize(
    "field", ["time", "principal", "unit", "method", "resources", "purpose", "outcome", "peer"]
)
def test_any_changed_field_breaks_the_hash(field: str) -> None:
    records = chain([entry(n) for n in range(4)], 0, GENESIS_HASH)
    changed = {
        "time": datetime(2024, 1, 1, tzinfo=UTC),
        "resources": ("reports/other",),
    }.get(field, "tampered")
    records[2] = dataclasses.replace(
        records[2], entry=dataclasses.replace(records[2].entry, **{field: changed})
    )
    verifier = ChainVerifier()
    assert not verifier.feed(records)
    result = verifier.result()
    assert (result.broken_at, result.problem, result.head_sequence) == (
        3,
        ChainProblem.HASH_MISMATCH,
        2,
    )


def test_a_missing_record_is_a_gap() -> None:
    records = chain([entry(n) for n in range(4)], 0, GENESIS_HASH)
    verifier = ChainVerifier()
    verifier.feed([records[0], records[2], records[3]])
    assert (verifier.result().broken_at, verifier.result().problem) == (
        2,
        ChainProblem.SEQUENCE_GAP,
    )


def test_resources_are_ids_only() -> None:
    update = pb.UpdateReportRequest(report=pb.Report(name="reports/abc", narrative="Jan Peeters"))
    assert resources_of(update) == ("reports/abc",)
    assert resources_of(pb.GetReportRequest(name="reports/abc@2")) == ("reports/abc@2",)
    # Something that is not a resource name (here: a person's name) is never copied.
    assert resources_of(pb.GetReportRequest(name="Jan Peeters, 12 Main St")) == (MALFORMED,)
    assert resources_of(apb.QueryAccessRequest(principal="officer-7")) == ("principals/officer-7",)
    assert resources_of(pb.ListReportsRequest(filter='author = "x"')) == ()
    assert resources_of(None) == ()
