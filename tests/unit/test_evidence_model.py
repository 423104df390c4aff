"""Evidence domain rules: metadata checks, names, content addresses, retention on dedup."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from justice.evidence.model import (
    MAX_PARTS,
    EvidenceConfig,
    Metadata,
    Retention,
    RetentionMode,
    RetentionRule,
    check_metadata,
    content_key,
    parse_evidence_name,
    parse_upload_name,
)
from justice.platform.errors import InvalidArgument

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
CONFIG = EvidenceConfig(
    bucket="b",
    staging_bucket="s",
    retention={
        "standard": RetentionRule(RetentionMode.COMPLIANCE, timedelta(days=3650)),
        "traffic": RetentionRule(RetentionMode.GOVERNANCE, timedelta(days=730)),
    },
    default_category="standard",
    share_default=timedelta(minutes=15),
    share_max=timedelta(days=1),
    max_upload_bytes=64 * 1024**3,
    max_chunk_bytes=4 * 1024 * 1024,
    part_bytes=8 * 1024 * 1024,
    upload_ttl=timedelta(days=1),
    sign_rehash_max_bytes=0,
)


def _meta(**overrides: object) -> Metadata:
    values: dict[str, object] = {
        "case_number": "AN.12.345/26",
        "media_type": "video/mp4",
        "original_filename": "bodycam.mp4",
        "request_id": "0123456789abcdef",
    }
    values.update(overrides)
    return Metadata(**values)  # type: ignore[arg-type]


def test_good_metadata_gets_the_default_category() -> None:
    assert check_metadata(_meta(), CONFIG, NOW) == "standard"
    assert check_metadata(_meta(category="traffic"), CONFIG, NOW) == "traffic"


def test_every_bad_field_is_listed() -> None:
    with pytest.raises(InvalidArgument) as bad:
        check_metadata(
            _meta(
                case_number="",
                report="report-1",
                media_type="mp4",
                original_filename="../../etc/passwd",
                request_id="short",
                capture_time=NOW + timedelta(days=1),
                category="unknown",
                declared_size=-1,
                declared_sha256="ABC",
            ),
            CONFIG,
            NOW,
        )
    assert {v.field for v in bad.value.violations} == {
        f"metadata.{name}"
        for name in (
            "case_number",
            "report",
            "media_type",
            "original_filename",
            "request_id",
            "capture_time",
            "category",
            "declared_size",
            "declared_sha256",
        )
    }


def test_names_parse_or_are_invalid() -> None:
    assert parse_evidence_name("evidence/abc_1") == "abc_1"
    assert parse_upload_name("uploads/0123456789abcdef") == "0123456789abcdef"
    for bad in ("evidence/", "evidence/a/b", "reports/x", "evidence/../x"):
        with pytest.raises(InvalidArgument):
            parse_evidence_name(bad)
    with pytest.raises(InvalidArgument):
        parse_upload_name("uploads/short")


def test_content_key_is_derived_from_the_hash() -> None:
    sha = "ab" + "0" * 62
    assert content_key(sha) == f"sha256/ab/{sha}"


def test_dedup_keeps_the_longer_and_stricter_lock() -> None:
    governance_long = Retention(RetentionMode.GOVERNANCE, NOW + timedelta(days=900))
    compliance_short = Retention(RetentionMode.COMPLIANCE, NOW + timedelta(days=10))
    both = governance_long.covering(compliance_short)
    assert both == Retention(RetentionMode.COMPLIANCE, NOW + timedelta(days=900))
    assert compliance_short.covering(compliance_short) == compliance_short


def test_part_size_grows_until_ten_thousand_parts_cover_the_maximum() -> None:
    assert CONFIG.part_size == 8 * 1024 * 1024  # 8 MiB x 10,000 covers 64 GiB
    bigger = replace(CONFIG, max_upload_bytes=200 * 1024**3)
    assert bigger.part_size == 21 * 1024 * 1024  # 20.48 MiB, rounded up to whole MiB
    assert bigger.part_size * MAX_PARTS >= bigger.max_upload_bytes
