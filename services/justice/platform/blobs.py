"""Object storage through the minio SDK: multipart writes, object lock, ranged reads, links.

The SDK is synchronous; every call runs on a bounded thread pool so the event loop
never blocks. Transport failures become Unavailable, and so does an answer the SDK
cannot parse; a missing object read becomes NotFound. S3 answers we do not expect
propagate as S3Error (a bug of ours, or a server we do not support).

Object lock is read tolerantly, from the XML ourselves: S3 servers differ in what they
send (radosgw 16.2 sends 9 fractional digits in RetainUntilDate, which minio-py 7.2
rejects, minio-py issue 1473; it answers ObjectLockConfigurationNotFoundError for a
version that never had a lock or a hold).
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE, CopySource
from minio.datatypes import Part
from minio.error import MinioException, S3Error
from minio.helpers import genheaders, md5sum_hash
from minio.retention import Retention
from minio.xml import marshal

from justice.platform.errors import FailedPrecondition, NotFound, Unavailable

__all__ = ["BlobInfo", "BlobLock", "Lock", "S3Blobs", "s3_address"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Codes meaning "this object (version) is not there".
_ABSENT = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchObject", "ResourceNotFound"})
# Codes meaning "this version has no retention / no legal hold": SeaweedFS answers
# NoSuchObjectLegalHold, radosgw ObjectLockConfigurationNotFoundError.
_NO_LOCK = frozenset({"NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"})
_NO_HOLD = _NO_LOCK | {"NoSuchObjectLegalHold"}
_MODES = {"COMPLIANCE": COMPLIANCE, "GOVERNANCE": GOVERNANCE}
# An ISO-8601 UTC time with any number of fractional digits.
_ISO_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$")


class Lock(Protocol):
    """A retention to set: any value with these (the evidence domain's Retention is one)."""

    @property
    def mode(self) -> str: ...  # COMPLIANCE or GOVERNANCE
    @property
    def until(self) -> datetime: ...


@dataclass(frozen=True)
class BlobLock:
    """A retention as S3 holds it."""

    mode: str  # COMPLIANCE or GOVERNANCE
    until: datetime


def s3_address(endpoint: str, secure: bool) -> tuple[str, bool]:
    """host:port as the SDK wants it, and whether to use TLS.

    A URL's scheme decides (http://host:port, https://host); a bare host:port keeps
    `secure`. A path, query or user part is refused: the SDK addresses buckets itself.
    """
    if "://" not in endpoint:
        return endpoint, secure
    url = urllib.parse.urlsplit(endpoint)
    if (
        url.scheme not in ("http", "https")
        or not url.hostname
        or url.path not in ("", "/")
        or url.query
        or url.fragment
        or url.username
    ):
        raise ValueError(
            f"S3 endpoint {endpoint!r}: give http(s)://host[:port] or host:port, no path"
        )
    return url.netloc, url.scheme == "https"


def parse_time(text: str) -> datetime:
    """An S3 time, its fraction cut to microseconds (Python keeps no more)."""
    match = _ISO_TIME.match(text.strip())
    if match is None:
        raise ValueError(f"not an ISO-8601 UTC time: {text[:40]!r}")
    whole, fraction = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    return datetime.fromisoformat(whole).replace(microsecond=micros, tzinfo=UTC)


def _xml_text(document: bytes, name: str) -> str | None:
    """The text of the first element called `name`, with or without the S3 namespace."""
    # The configured S3 server's answer, parsed as the SDK parses it (expat refuses
    # entity expansion bombs since 2.4.1).
    for element in ET.fromstring(document).iter():  # noqa: S314
        if element.tag.rpartition("}")[2] == name:
            return (element.text or "").strip()
    return None


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
        address, secure = s3_address(endpoint, secure)
        # A fixed region: otherwise presigning asks the server for the bucket location.
        self._client = Minio(
            address,
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
        except (ValueError, ET.ParseError) as error:
            # An answer the SDK (or we) cannot read: the server speaks a dialect we do not.
            log.error("object storage answer not understood: %s", error)
            raise Unavailable(
                "OBJECT_STORAGE_ANSWER_UNREADABLE",
                "object storage sent an answer that could not be read",
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
    ) -> str:
        headers = genheaders(
            {f"x-amz-meta-{k}": v for k, v in metadata.items()}, None, None, None, False
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

    async def remove_version(self, bucket: str, key: str, version_id: str) -> bool:
        """Delete one version; False when S3 refuses (object lock), True when it is gone."""
        try:
            await self.remove(bucket, key, version_id)
        except S3Error as error:
            if error.code == "AccessDenied":
                return False
            raise
        return True

    async def put(self, bucket: str, key: str, data: bytes) -> str:
        """A small object in one request; returns its version id ("" when unversioned)."""
        result = await self._run(self._client.put_object, bucket, key, io.BytesIO(data), len(data))
        return result.version_id or ""

    async def bucket_versioned(self, bucket: str) -> bool:
        config = await self._run(self._client.get_bucket_versioning, bucket)
        return config.status == "Enabled"

    async def bucket_object_lock(self, bucket: str) -> bool:
        """Whether the bucket was made with object lock (its ObjectLockEnabled)."""
        try:
            response = await self._run(
                self._client._execute, "GET", bucket, query_params={"object-lock": ""}
            )
        except S3Error as error:
            if error.code in _NO_LOCK or error.code == "ObjectLockConfigurationNotFound":
                return False
            raise
        return await self._run(_xml_text, response.data, "ObjectLockEnabled") == "Enabled"

    async def lock(self, bucket: str, key: str, version_id: str) -> BlobLock | None:
        """The retention S3 holds on this version, None when it holds none."""
        try:
            response = await self._run(
                self._client._execute,
                "GET",
                bucket,
                object_name=key,
                query_params={"retention": "", "versionId": version_id},
            )
        except S3Error as error:
            # InvalidRequest: the bucket has no object lock, so no version in it is locked.
            if error.code in _NO_LOCK or error.code == "InvalidRequest":
                return None
            raise
        return await self._run(_parse_retention, response.data)

    async def set_lock(
        self, bucket: str, key: str, version_id: str, lock: Lock, *, bypass_governance: bool = False
    ) -> None:
        """Raises FailedPrecondition OBJECT_LOCK_REFUSED when S3 will not set it.

        Turning a GOVERNANCE lock into COMPLIANCE is a change S3 only allows with
        `bypass_governance` (x-amz-bypass-governance-retention); the SDK cannot send it."""
        body = marshal(Retention(_MODES[lock.mode], lock.until))
        headers = {"Content-MD5": md5sum_hash(body) or ""}
        if bypass_governance:
            headers["x-amz-bypass-governance-retention"] = "true"
        try:
            await self._run(
                self._client._execute,
                "PUT",
                bucket,
                object_name=key,
                body=body,
                headers=headers,
                query_params={"retention": "", "versionId": version_id},
            )
        except S3Error as error:
            raise _refused(error) from None

    async def set_legal_hold(self, bucket: str, key: str, version_id: str, on: bool) -> None:
        """Raises FailedPrecondition OBJECT_LOCK_REFUSED when S3 will not set it."""
        call = (
            self._client.enable_object_legal_hold if on else self._client.disable_object_legal_hold
        )
        try:
            await self._run(call, bucket, key, version_id=version_id)
        except S3Error as error:
            raise _refused(error) from None

    async def legal_hold(self, bucket: str, key: str, version_id: str) -> bool:
        try:
            return bool(
                await self._run(
                    self._client.is_object_legal_hold_enabled, bucket, key, version_id=version_id
                )
            )
        except S3Error as error:
            if error.code in _NO_HOLD or error.code == "InvalidRequest":
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
        """Yield the bytes of [offset, offset+length) (to the end when length is 0).

        A version that is not there raises NotFound OBJECT_NOT_FOUND."""
        try:
            response = await self._run(
                self._client.get_object,
                bucket,
                key,
                offset=offset,
                length=length,
                version_id=version_id,
            )
        except S3Error as error:
            if error.code in _ABSENT:
                raise NotFound("OBJECT_NOT_FOUND", "the stored object is not there") from None
            raise
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


def _parse_retention(document: bytes) -> BlobLock | None:
    mode = _xml_text(document, "Mode")
    until = _xml_text(document, "RetainUntilDate")
    if not mode or not until:
        return None
    if mode not in _MODES:
        raise ValueError(f"unknown retention mode {mode[:20]!r}")
    return BlobLock(mode, parse_time(until))


def _refused(error: S3Error) -> FailedPrecondition:
    # A bucket without object lock, or a server that does not do it: the caller decides.
    return FailedPrecondition(
        "OBJECT_LOCK_REFUSED",
        f"object storage refused the object lock ({error.code})",
        metadata={"s3_code": str(error.code)},
    )
