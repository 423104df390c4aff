"""The evidence domain's ports in memory: its tables, and an S3 that keeps versions, locks
and legal holds (or, with keeps_locks=False, drops them as some servers do)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from justice.evidence.model import Evidence, Retention, Share, UploadSession
from justice.evidence.ports import EvidenceQuery
from justice.platform.errors import NotFound
from tests.fakes.unit_of_work import InMemoryUnitOfWork, Keyed


@dataclass
class EvidenceTables:
    evidence: dict[str, Evidence] = field(default_factory=dict)
    uploads: dict[str, UploadSession] = field(default_factory=dict)
    shares: list[Share] = field(default_factory=list)


class InMemoryEvidence(Keyed[Evidence]):
    def __init__(self, tables: EvidenceTables) -> None:
        super().__init__(tables.evidence, lambda e: e.evidence_id)

    async def by_request(self, uploader: str, request_id: str) -> Evidence | None:
        return next(
            (
                e
                for e in self._rows.values()
                if (e.uploader, e.metadata.request_id) == (uploader, request_id)
            ),
            None,
        )

    async def list(self, query: EvidenceQuery) -> Sequence[Evidence]:
        rows = sorted(self._rows.values(), key=lambda e: e.evidence_id)
        return [
            e
            for e in rows
            if e.evidence_id > query.page.after
            and query.case_number in (None, e.metadata.case_number)
            and query.report in (None, e.metadata.report)
            and query.media_type in (None, e.metadata.media_type)
        ][: query.page.size]

    async def sharing_object(self, bucket: str, key: str, version_id: str) -> Sequence[Evidence]:
        return [
            e
            for e in self._rows.values()
            if (e.bucket, e.key, e.version_id) == (bucket, key, version_id)
        ]


class InMemoryUploads(Keyed[UploadSession]):
    def __init__(self, tables: EvidenceTables) -> None:
        super().__init__(tables.uploads, lambda u: u.upload_id)

    async def remove(self, upload_id: str) -> None:
        self._rows.pop(upload_id, None)

    async def expired(self, now: datetime, limit: int) -> Sequence[UploadSession]:
        stale = [s for s in self._rows.values() if s.expire_time <= now]
        return sorted(stale, key=lambda s: s.expire_time)[:limit]


class InMemoryShares:
    def __init__(self, tables: EvidenceTables) -> None:
        self._rows = tables.shares

    async def add(self, share: Share) -> None:
        self._rows.append(share)

    async def shared_with(self, evidence_id: str, partner: str) -> bool:
        return any((s.evidence_id, s.partner) == (evidence_id, partner) for s in self._rows)


class EvidenceUnit(InMemoryUnitOfWork[EvidenceTables]):
    @property
    def evidence(self) -> InMemoryEvidence:
        return InMemoryEvidence(self.staged)

    @property
    def uploads(self) -> InMemoryUploads:
        return InMemoryUploads(self.staged)

    @property
    def shares(self) -> InMemoryShares:
        return InMemoryShares(self.staged)


@dataclass
class StoredVersion:
    version_id: str
    data: bytes
    metadata: dict[str, str]
    lock: Retention | None = None
    held: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def mode(self) -> str:
        assert self.lock is not None
        return self.lock.mode.value

    @property
    def until(self) -> datetime:
        assert self.lock is not None
        return self.lock.until


class InMemoryBlobs:
    """Versioned buckets with object lock. A locked or held version cannot be removed."""

    def __init__(self, *, keeps_locks: bool = True) -> None:
        self.keeps_locks = keeps_locks
        self.objects: dict[tuple[str, str], list[StoredVersion]] = {}
        self._multipart: dict[str, dict[int, bytes]] = {}
        self._ids = itertools.count(1)

    def versions(self, bucket: str, key: str) -> list[StoredVersion]:
        return self.objects.get((bucket, key), [])

    def _version(self, bucket: str, key: str, version_id: str | None) -> StoredVersion | None:
        versions = self.versions(bucket, key)
        if version_id is None:
            return versions[-1] if versions else None
        return next((v for v in versions if v.version_id == version_id), None)

    def _write(self, bucket: str, key: str, data: bytes, metadata: dict[str, str]) -> str:
        version = StoredVersion(f"v{next(self._ids)}", data, dict(metadata))
        self.objects.setdefault((bucket, key), []).append(version)
        return version.version_id

    async def put(self, bucket: str, key: str, data: bytes) -> str:
        return self._write(bucket, key, data, {})

    async def start_multipart(
        self, bucket: str, key: str, *, content_type: str, metadata: dict[str, str]
    ) -> str:
        upload_id = f"mp{next(self._ids)}"
        self._multipart[upload_id] = {}
        return upload_id

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, data: bytes | memoryview
    ) -> str:
        self._multipart[upload_id][number] = bytes(data)
        return hashlib.md5(bytes(data)).hexdigest()  # noqa: S324 - an S3 etag, not security

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> str:
        uploaded = self._multipart.pop(upload_id)
        data = b"".join(uploaded[number] for number, _ in parts)
        return self._write(bucket, key, data, {"sha256": hashlib.sha256(data).hexdigest()})

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        self._multipart.pop(upload_id, None)

    async def stat(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> StoredVersion | None:
        return self._version(bucket, key, version_id)

    async def copy(
        self,
        source_bucket: str,
        source_key: str,
        bucket: str,
        key: str,
        *,
        content_type: str,
        metadata: dict[str, str],
    ) -> str:
        source = self._version(source_bucket, source_key, None)
        assert source is not None
        return self._write(bucket, key, source.data, metadata)

    async def remove(self, bucket: str, key: str, version_id: str | None = None) -> None:
        version = self._version(bucket, key, version_id)
        if version is not None:
            await self.remove_version(bucket, key, version.version_id)

    async def remove_version(self, bucket: str, key: str, version_id: str) -> bool:
        version = self._version(bucket, key, version_id)
        if version is None or version.held or version.lock is not None:
            return False
        self.objects[(bucket, key)].remove(version)
        return True

    async def read(
        self, bucket: str, key: str, version_id: str, *, offset: int = 0, length: int = 0
    ) -> AsyncIterator[bytes]:
        version = self._version(bucket, key, version_id)
        if version is None:
            raise NotFound("OBJECT_NOT_FOUND", f"{bucket}/{key} {version_id}")
        end = offset + length if length else len(version.data)
        yield version.data[offset:end]

    def presigned_get(self, bucket: str, key: str, version_id: str, expires: timedelta) -> str:
        return f"https://s3.test/{bucket}/{key}?versionId={version_id}&expires={int(expires.total_seconds())}"

    async def lock(self, bucket: str, key: str, version_id: str) -> StoredVersion | None:
        version = self._version(bucket, key, version_id)
        return version if version is not None and version.lock is not None else None

    async def set_lock(
        self,
        bucket: str,
        key: str,
        version_id: str,
        lock: Retention,
        *,
        bypass_governance: bool = False,
    ) -> None:
        version = self._version(bucket, key, version_id)
        if version is not None and self.keeps_locks:
            version.lock = lock

    async def legal_hold(self, bucket: str, key: str, version_id: str) -> bool:
        version = self._version(bucket, key, version_id)
        return version is not None and version.held

    async def set_legal_hold(self, bucket: str, key: str, version_id: str, on: bool) -> None:
        version = self._version(bucket, key, version_id)
        if version is not None and self.keeps_locks:
            version.held = on

    async def bucket_versioned(self, bucket: str) -> bool:
        return True

    async def bucket_object_lock(self, bucket: str) -> bool:
        return self.keeps_locks


class KnownCases:
    """The case directory: these cases exist; reports map to (case, recipient office)."""

    def __init__(
        self, cases: set[str], reports: dict[str, tuple[str, str | None]] | None = None
    ) -> None:
        self._cases = cases
        self._reports = reports or {}

    async def case_known(self, case_number: str) -> bool:
        return case_number in self._cases

    async def report_case(self, report: str) -> str | None:
        found = self._reports.get(report)
        return found[0] if found else None

    async def report_recipient(self, report: str) -> str | None:
        found = self._reports.get(report)
        return found[1] if found else None


class Alarms:
    def __init__(self) -> None:
        self.raised: list[tuple[str, str]] = []

    async def raise_alert(self, kind: str, subject: str, summary: str) -> None:
        self.raised.append((kind, subject))
