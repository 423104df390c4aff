"""Object storage through the minio SDK: multipart writes, object lock, ranged reads, links.

The SDK is synchronous; every call runs on a bounded thread pool so the event loop
never blocks. Transport failures become Unavailable; S3 answers we do not expect
propagate as S3Error (a bug of ours, or a server we do not support).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE, CopySource
from minio.datatypes import Part
from minio.error import MinioException, S3Error
from minio.helpers import genheaders
from minio.retention import Retention

from justice.platform.errors import Unavailable

__all__ = ["BlobInfo", "BlobLock", "S3Blobs"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Codes meaning "this object (version) is not there".
_ABSENT = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchObject", "ResourceNotFound"})
# SeaweedFS answers NoSuchObjectLegalHold for a version that never had a hold.
_NO_HOLD = frozenset({"NoSuchObjectLegalHold", "NoSuchObjectLockConfiguration"})
_MODES = {"COMPLIANCE": COMPLIANCE, "GOVERNANCE": GOVERNANCE}


@dataclass(frozen=True)
class BlobLock:
    mode: str  # COMPLIANCE or GOVERNANCE
    until: datetime


@dataclass(frozen=True)
class BlobInfo:
    key: str
    version_id: str
    size: int
    metadata: dict[str, str]


class S3Blobs:
    """One S3 endpoint. Blocking SDK calls run on `workers` threads."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        workers: int = 16,
        timeout: float = 60.0,
    ) -> None:
        # Few retries: a down server should surface as UNAVAILABLE quickly, not after minutes.
        pool = urllib3.PoolManager(
            maxsize=workers,
            timeout=urllib3.Timeout(connect=5, read=timeout),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(502, 503, 504)),
        )
        # A fixed region: otherwise presigning asks the server for the bucket location.
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=pool,
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, functools.partial(call, *args, **kwargs))
        except S3Error:
            raise
        except (urllib3.exceptions.HTTPError, MinioException, OSError) as error:
            log.warning("object storage unreachable: %s", type(error).__name__)
            raise Unavailable(
                "OBJECT_STORAGE_UNAVAILABLE", "object storage is unreachable; retry later"
            ) from None

    async def ensure_bucket(self, bucket: str, *, object_lock: bool) -> None:
        """Create the bucket if missing; an object-lock bucket is versioned by S3 itself."""
        if not await self._run(self._client.bucket_exists, bucket):
            try:
                await self._run(self._client.make_bucket, bucket, object_lock=object_lock)
            except S3Error as error:
                if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    async def start_multipart(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str,
        metadata: dict[str, str],
        lock: BlobLock | None = None,
    ) -> str:
        retention = Retention(_MODES[lock.mode], lock.until) if lock else None
        headers = genheaders(
            {f"x-amz-meta-{k}": v for k, v in metadata.items()}, None, None, retention, False
        )
        headers["Content-Type"] = content_type
        return await self._run(self._client._create_multipart_upload, bucket, key, headers)

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, data: bytes | memoryview
    ) -> str:
        """Upload one part from a buffer (not copied: urllib3 sends it as it is)."""
        return await self._run(
            self._client._upload_part, bucket, key, data, None, upload_id, number
        )

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> str:
        """Complete; returns the new version id ("" on an unversioned bucket)."""
        result = await self._run(
            self._client._complete_multipart_upload,
            bucket,
            key,
            upload_id,
            [Part(number, etag) for number, etag in parts],
        )
        return result.version_id or ""

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        try:
            await self._run(self._client._abort_multipart_upload, bucket, key, upload_id)
        except S3Error as error:
            if error.code != "NoSuchUpload":
                raise

    async def stat(self, bucket: str, key: str, version_id: str | None = None) -> BlobInfo | None:
        try:
            stat = await self._run(self._client.stat_object, bucket, key, version_id=version_id)
        except S3Error as error:
            if error.code in _ABSENT:
                return None
            raise
        metadata = {
            k.lower().removeprefix("x-amz-meta-"): v
            for k, v in (stat.metadata or {}).items()
            if k.lower().startswith("x-amz-meta-")
        }
        return BlobInfo(key, stat.version_id or "", stat.size or 0, metadata)

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
        """Server-side copy (composed from ranges above 5 GiB); returns the new version id."""
        headers = {
            "Content-Type": content_type,
            **{f"x-amz-meta-{k}": v for k, v in metadata.items()},
        }
        result = await self._run(
            self._client.copy_object,
            bucket,
            key,
            CopySource(source_bucket, source_key),
            metadata=headers,
            metadata_directive="REPLACE",
        )
        return result.version_id or ""

    async def remove(self, bucket: str, key: str, version_id: str | None = None) -> None:
        await self._run(self._client.remove_object, bucket, key, version_id=version_id)

    async def lock(self, bucket: str, key: str, version_id: str) -> BlobLock | None:
        try:
            found = await self._run(
                self._client.get_object_retention, bucket, key, version_id=version_id
            )
        except S3Error as error:
            if error.code in (
                "NoSuchObjectLockConfiguration",
                "ObjectLockConfigurationNotFoundError",
            ):
                return None
            raise
        if found is None or found.mode is None or found.retain_until_date is None:
            return None
        return BlobLock(found.mode, found.retain_until_date)

    async def set_lock(self, bucket: str, key: str, version_id: str, lock: BlobLock) -> None:
        await self._run(
            self._client.set_object_retention,
            bucket,
            key,
            Retention(_MODES[lock.mode], lock.until),
            version_id=version_id,
        )

    async def set_legal_hold(self, bucket: str, key: str, version_id: str, on: bool) -> None:
        call = (
            self._client.enable_object_legal_hold if on else self._client.disable_object_legal_hold
        )
        await self._run(call, bucket, key, version_id=version_id)

    async def legal_hold(self, bucket: str, key: str, version_id: str) -> bool:
        try:
            return bool(
                await self._run(
                    self._client.is_object_legal_hold_enabled, bucket, key, version_id=version_id
                )
            )
        except S3Error as error:
            if error.code in _NO_HOLD:
                return False
            raise

    async def read(
        self,
        bucket: str,
        key: str,
        version_id: str,
        *,
        offset: int = 0,
        length: int = 0,
        chunk_bytes: int = 1024 * 1024,
    ) -> AsyncIterator[bytes]:
        """Yield the bytes of [offset, offset+length) (to the end when length is 0)."""
        response = await self._run(
            self._client.get_object,
            bucket,
            key,
            offset=offset,
            length=length,
            version_id=version_id,
        )
        try:
            while True:
                chunk = await self._run(response.read, chunk_bytes)
                if not chunk:
                    return
                yield chunk
        finally:
            response.close()
            response.release_conn()

    def presigned_get(self, bucket: str, key: str, version_id: str, expires: timedelta) -> str:
        """A GET link signed locally (no request): works with curl until it expires."""
        return self._client.presigned_get_object(
            bucket, key, expires=expires, version_id=version_id
        )
