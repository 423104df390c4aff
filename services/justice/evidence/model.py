"""Evidence: the record of one stored file, its retention, uploads in progress and shares.

Imports nothing from grpc, sqlmodel, nats, minio or signxml.
"""

from __future__ import annotations

import enum
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from justice.platform.cases import case_number_violations
from justice.platform.errors import FieldViolation, InvalidArgument


class RetentionMode(enum.StrEnum):
    # A str, so object storage adapters take it as the mode name as it is.
    COMPLIANCE = "COMPLIANCE"
    GOVERNANCE = "GOVERNANCE"


class Integrity(enum.Enum):
    UNVERIFIED = "UNVERIFIED"
    INTACT = "INTACT"
    MISMATCH = "MISMATCH"
    MISSING = "MISSING"


@dataclass(frozen=True)
class RetentionRule:
    mode: RetentionMode
    period: timedelta


@dataclass(frozen=True)
class Retention:
    mode: RetentionMode
    until: datetime

    def covering(self, other: Retention) -> Retention:
        """The lock that satisfies both: the later date, and COMPLIANCE if either asks it."""
        compliance = RetentionMode.COMPLIANCE in (self.mode, other.mode)
        return Retention(
            RetentionMode.COMPLIANCE if compliance else RetentionMode.GOVERNANCE,
            max(self.until, other.until),
        )


# S3 numbers the parts of one multipart upload 1..10000.
MAX_PARTS = 10_000
_MiB = 1024 * 1024


@dataclass(frozen=True)
class EvidenceConfig:
    bucket: str
    staging_bucket: str
    retention: Mapping[str, RetentionRule]
    default_category: str
    share_default: timedelta
    share_max: timedelta
    max_upload_bytes: int
    max_chunk_bytes: int
    part_bytes: int
    upload_ttl: timedelta
    sign_rehash_max_bytes: int
    # Part buffers of one upload: parts uploading at once, the one filling included.
    parts_in_flight: int = 3

    @property
    def part_size(self) -> int:
        """The configured part size, grown (to whole MiB) until S3's part limit covers the
        maximum upload. A stream buffers at most parts_in_flight parts of this size."""
        floor = -(-self.max_upload_bytes // MAX_PARTS)
        return max(self.part_bytes, -(-floor // _MiB) * _MiB)


@dataclass(frozen=True)
class Metadata:
    """What the uploader says about a file before sending it."""

    case_number: str
    media_type: str
    original_filename: str
    request_id: str
    report: str = ""
    capture_time: datetime | None = None
    capture_device: str = ""
    category: str = ""
    declared_size: int = 0
    declared_sha256: str = ""


@dataclass
class Evidence:
    evidence_id: str
    metadata: Metadata
    uploader: str
    # The uploader's unit when it uploaded (units see their own evidence).
    unit: str
    category: str
    size_bytes: int
    sha256: str
    # Where the bytes are: one object version, shared by every record of the same content.
    bucket: str
    key: str
    version_id: str
    retention: Retention
    create_time: datetime
    legal_hold: bool = False
    integrity: Integrity = Integrity.UNVERIFIED
    verify_time: datetime | None = None

    @property
    def name(self) -> str:
        return f"evidence/{self.evidence_id}"


@dataclass(frozen=True)
class Part:
    number: int
    etag: str
    size: int


@dataclass
class UploadSession:
    """An upload in progress. Bytes up to committed_offset are safely in S3 parts."""

    upload_id: str  # the client's request_id
    uploader: str
    unit: str
    metadata: Metadata
    category: str
    bucket: str
    key: str
    # The S3 multipart upload id; empty when the content exists already (hash-only).
    s3_upload_id: str
    expire_time: datetime
    committed_offset: int = 0
    parts: list[Part] = field(default_factory=list)
    # Set (to the S3 version, "" when unversioned) once the multipart upload is completed
    # to hash the file back after a restart, until the bytes are placed. Not stored.
    completed: str | None = None

    @property
    def name(self) -> str:
        return f"uploads/{self.upload_id}"

    @property
    def stages(self) -> bool:
        """Its hash is known only at the end, so it goes through the staging bucket."""
        return not self.metadata.declared_sha256

    def commit(self, part: Part, now: datetime, ttl: timedelta) -> None:
        self.parts.append(part)
        self.committed_offset += part.size
        self.expire_time = now + ttl


@dataclass(frozen=True)
class Share:
    share_id: str
    evidence_id: str
    sharer: str
    partner: str
    purpose: str
    create_time: datetime
    expire_time: datetime

    @property
    def name(self) -> str:
        return f"evidence/{self.evidence_id}/shares/{self.share_id}"


def content_key(sha256: str) -> str:
    """The object key of some content: its hash, fanned out over 256 prefixes."""
    return f"sha256/{sha256[:2]}/{sha256}"


def new_id() -> str:
    # Time-ordered, so that ids sort by creation and page tokens are stable.
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


_REPORT = re.compile(r"^reports/[A-Za-z0-9_-]{1,64}$")
_MEDIA_TYPE = re.compile(r"^[a-z]+/[a-z0-9][a-z0-9.+-]{0,126}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_PARTNER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FORBIDDEN_CHARS = re.compile("[\x00-\x1f\x7f/\\\\]")
EVIDENCE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_metadata(meta: Metadata, config: EvidenceConfig, now: datetime) -> str:
    """Raise InvalidArgument listing every bad field; return the retention category."""
    v: list[FieldViolation] = []
    v += case_number_violations("metadata.case_number", meta.case_number)
    if meta.report and not _REPORT.match(meta.report):
        v.append(FieldViolation("metadata.report", "a reports/{report} name"))
    if not _MEDIA_TYPE.match(meta.media_type):
        v.append(FieldViolation("metadata.media_type", "a media type such as video/mp4"))
    if not meta.original_filename or len(meta.original_filename) > 255:
        v.append(FieldViolation("metadata.original_filename", "1-255 characters"))
    elif _FORBIDDEN_CHARS.search(meta.original_filename):
        v.append(FieldViolation("metadata.original_filename", "a file name, not a path"))
    if not _REQUEST_ID.match(meta.request_id):
        v.append(FieldViolation("metadata.request_id", "16-64 of A-Z a-z 0-9 _ -"))
    if meta.capture_time is not None and meta.capture_time > now + timedelta(minutes=5):
        v.append(FieldViolation("metadata.capture_time", "in the future"))
    if len(meta.capture_device) > 256 or _FORBIDDEN_CHARS.search(
        meta.capture_device.replace("/", "")
    ):
        v.append(FieldViolation("metadata.capture_device", "at most 256 printable characters"))
    category = meta.category or config.default_category
    if category not in config.retention:
        known = ", ".join(sorted(config.retention))
        v.append(FieldViolation("metadata.category", f"one of {known}"))
    if meta.declared_size < 0:
        v.append(FieldViolation("metadata.declared_size", "not negative"))
    if meta.declared_sha256 and not _SHA256.match(meta.declared_sha256):
        v.append(FieldViolation("metadata.declared_sha256", "64 lower-case hex digits"))
    if v:
        raise InvalidArgument.of(v)
    return category


def check_partner(partner: str) -> None:
    if not _PARTNER.match(partner):
        raise InvalidArgument.of([FieldViolation("partner", "a partner id")])


def parse_evidence_name(name: str, field_name: str = "name") -> str:
    prefix = "evidence/"
    if not name.startswith(prefix) or not EVIDENCE_ID.match(name[len(prefix) :]):
        raise InvalidArgument.of([FieldViolation(field_name, "expected evidence/{evidence}")])
    return name[len(prefix) :]


def parse_upload_name(name: str, field_name: str = "name") -> str:
    prefix = "uploads/"
    if not name.startswith(prefix) or not _REQUEST_ID.match(name[len(prefix) :]):
        raise InvalidArgument.of([FieldViolation(field_name, "expected uploads/{request_id}")])
    return name[len(prefix) :]
