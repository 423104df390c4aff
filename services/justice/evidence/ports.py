"""What the evidence service needs from outside, as Protocols: its repositories and unit of
work, object storage, the case directory and the alert channel.

Adapters implement these (justice.evidence.store on a database, justice.platform.blobs on
S3); the service only ever names the Protocols, so no adapter type (nor minio, nor
sqlmodel) reaches the domain. The values that cross a port (EvidenceQuery) live here too, so
a store never imports the service to learn them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from justice.evidence.model import Evidence, Retention, Share, UploadSession
from justice.platform import ports
from justice.platform.listing import Page


@dataclass(frozen=True)
class EvidenceQuery:
    page: Page
    case_number: str | None = None
    report: str | None = None
    media_type: str | None = None


class EvidenceRepository(Protocol):
    async def add(self, evidence: Evidence) -> None: ...
    async def get(self, evidence_id: str) -> Evidence | None: ...
    async def by_request(self, uploader: str, request_id: str) -> Evidence | None: ...
    async def list(self, query: EvidenceQuery) -> Sequence[Evidence]: ...
    async def sharing_object(self, bucket: str, key: str, version_id: str) -> Sequence[Evidence]:
        """Every record whose bytes are this object version."""

    async def update(self, evidence: Evidence) -> None: ...


class UploadRepository(Protocol):
    async def add(self, session: UploadSession) -> None: ...
    async def get(self, upload_id: str) -> UploadSession | None: ...
    async def update(self, session: UploadSession) -> None: ...
    async def remove(self, upload_id: str) -> None: ...
    async def expired(self, now: datetime, limit: int) -> Sequence[UploadSession]: ...


class ShareRepository(Protocol):
    async def add(self, share: Share) -> None: ...
    async def shared_with(self, evidence_id: str, partner: str) -> bool: ...


class UnitOfWork(ports.UnitOfWork, Protocol):
    @property
    def evidence(self) -> EvidenceRepository: ...
    @property
    def uploads(self) -> UploadRepository: ...
    @property
    def shares(self) -> ShareRepository: ...


class Alarm(Protocol):
    """The platform's alert channel (stored with the audit alerts, listed by ListAlerts)."""

    async def raise_alert(self, kind: str, subject: str, summary: str) -> None: ...


class ObjectLock(Protocol):
    """A retention as S3 holds it on one version."""

    @property
    def mode(self) -> str: ...
    @property
    def until(self) -> datetime: ...


class StoredObject(Protocol):
    @property
    def version_id(self) -> str: ...
    @property
    def metadata(self) -> dict[str, str]: ...


class ObjectInfo(StoredObject, Protocol):
    @property
    def size(self) -> int: ...


class LockStore(Protocol):
    """What write-once locking needs of object storage (justice.platform.blobs.S3Blobs)."""

    async def stat(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> StoredObject | None: ...
    async def remove(self, bucket: str, key: str, version_id: str | None = None) -> None: ...

    async def lock(self, bucket: str, key: str, version_id: str) -> ObjectLock | None: ...
    async def set_lock(
        self,
        bucket: str,
        key: str,
        version_id: str,
        lock: Retention,
        *,
        bypass_governance: bool = False,
    ) -> None: ...
    async def legal_hold(self, bucket: str, key: str, version_id: str) -> bool: ...
    async def set_legal_hold(self, bucket: str, key: str, version_id: str, on: bool) -> None: ...
    async def remove_version(self, bucket: str, key: str, version_id: str) -> bool: ...
    async def put(self, bucket: str, key: str, data: bytes) -> str: ...
    async def bucket_versioned(self, bucket: str) -> bool: ...
    async def bucket_object_lock(self, bucket: str) -> bool: ...


class BlobStore(LockStore, Protocol):
    """Object storage (justice.platform.blobs.S3Blobs)."""

    async def start_multipart(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str,
        metadata: dict[str, str],
    ) -> str: ...
    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, data: bytes | memoryview
    ) -> str: ...
    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> str: ...
    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None: ...
    async def stat(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> ObjectInfo | None: ...
    async def copy(
        self,
        source_bucket: str,
        source_key: str,
        bucket: str,
        key: str,
        *,
        content_type: str,
        metadata: dict[str, str],
    ) -> str: ...
    async def remove(self, bucket: str, key: str, version_id: str | None = None) -> None: ...
    def read(
        self, bucket: str, key: str, version_id: str, *, offset: int = 0, length: int = 0
    ) -> AsyncIterator[bytes]: ...
    def presigned_get(self, bucket: str, key: str, version_id: str, expires: timedelta) -> str: ...


class CaseDirectory(Protocol):
    """What the platform knows about cases and reports (the report service, behind a port)."""

    async def case_known(self, case_number: str) -> bool: ...
    async def report_case(self, report: str) -> str | None:
        """The case number of a report, None when there is no such report."""

    async def report_recipient(self, report: str) -> str | None:
        """The office a report was submitted to, None when not submitted (or no report)."""
