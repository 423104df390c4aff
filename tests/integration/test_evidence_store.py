"""The evidence service on its real adapters: S3Blobs on SeaweedFS, tables on SQLite/PostgreSQL.

What the gRPC tests cannot stage: S3 being down, and abandoned uploads expiring.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from justice.devstack.seaweed import SeaweedS3
from justice.devstack.supervised import free_tcp_port
from justice.evidence.model import Metadata, content_key
from justice.evidence.service import EvidenceService, ResumeRequest
from justice.evidence.store import EvidenceTransaction
from justice.platform.blobs import S3Blobs
from justice.platform.db import Database
from justice.platform.errors import (
    DataLoss,
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from tests.evidence_env import (
    AnyCase,
    Clock,
    MiB,
    chunks,
    evidence_service,
    metadata,
    rows,
)


@pytest.fixture
def blobs(s3_server: SeaweedS3) -> Iterator[S3Blobs]:
    store = S3Blobs(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    yield store
    store.close()


async def test_s3_down_is_unavailable_and_leaves_no_record(database: Database) -> None:
    dead = S3Blobs(f"127.0.0.1:{free_tcp_port()}", "nobody", "nothing", timeout=2)
    try:
        service = evidence_service(database, dead, Clock(), "down")
        before = (await rows(database, "evidence"), await rows(database, "evidence_upload"))
        with pytest.raises(Unavailable) as down:
            await service.upload("officer-1", metadata(), chunks(b"bytes"), unit="unit-1")
        assert down.value.reason == "OBJECT_STORAGE_UNAVAILABLE"
        after = (await rows(database, "evidence"), await rows(database, "evidence_upload"))
        assert after == before
    finally:
        dead.close()


async def test_abandoned_upload_expires_and_its_multipart_upload_is_aborted(
    database: Database, blobs: S3Blobs, s3_server: SeaweedS3
) -> None:
    clock = Clock()
    suffix = uuid.uuid4().hex[:8]
    service = evidence_service(database, blobs, clock, suffix)
    config = service.config
    await blobs.ensure_bucket(config.bucket, object_lock=True)
    await blobs.ensure_bucket(config.staging_bucket, object_lock=False)
    data = os.urandom(6 * MiB)
    meta = metadata(declared_sha256=hashlib.sha256(data).hexdigest())

    class Cut(Exception):
        pass

    async def cut_after_one_part() -> AsyncIterator[bytes]:
        async for chunk in chunks(data[: 5 * MiB + 1]):
            yield chunk
        raise Cut

    with pytest.raises(Cut):
        await service.upload("officer-1", meta, cut_after_one_part(), unit="unit-1")
    session = await service.get_upload("officer-1", f"uploads/{meta.request_id}")
    assert session.committed_offset == 5 * MiB
    client = s3_server.client()
    pending = client._list_multipart_uploads(config.bucket).uploads
    assert [u.upload_id for u in pending] == [session.s3_upload_id]

    assert await service.expire_uploads() == 0  # not yet
    clock.now += config.upload_ttl + timedelta(seconds=1)
    assert await service.expire_uploads() == 1
    assert client._list_multipart_uploads(config.bucket).uploads == []
    with pytest.raises(NotFound) as gone:
        await service.get_upload("officer-1", f"uploads/{meta.request_id}")
    assert gone.value.reason == "UPLOAD_NOT_FOUND"


async def _cut_then_restart(
    database: Database, blobs: S3Blobs, meta: Metadata, data: bytes, suffix: str = ""
) -> EvidenceService:
    """Stream `data` into a new upload, cut the connection, and return a new service on the
    same database and buckets: a restarted process, nothing of the upload in memory."""
    suffix = suffix or uuid.uuid4().hex[:8]
    first = evidence_service(database, blobs, Clock(), suffix)
    await blobs.ensure_bucket(first.config.bucket, object_lock=True)
    await blobs.ensure_bucket(first.config.staging_bucket, object_lock=False)

    async def cut() -> AsyncIterator[bytes]:
        async for chunk in chunks(data):
            yield chunk
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        await first.upload("officer-1", meta, cut(), unit="unit-1")
    return evidence_service(database, blobs, Clock(), suffix)


@pytest.mark.parametrize("declare", [False, True], ids=["staged", "declared"])
async def test_an_upload_resumes_after_a_restart_and_is_hashed_back_from_storage(
    database: Database, blobs: S3Blobs, s3_server: SeaweedS3, declare: bool
) -> None:
    data = os.urandom(11 * MiB + 10)
    sha = hashlib.sha256(data).hexdigest()
    meta = metadata(declared_sha256=sha if declare else "")
    restarted = await _cut_then_restart(database, blobs, meta, data[: 6 * MiB])
    with pytest.raises(FailedPrecondition) as wrong:
        await restarted.upload(
            "officer-1",
            ResumeRequest(f"uploads/{meta.request_id}", 0),
            chunks(data),
            unit="unit-1",
        )
    assert wrong.value.reason == "OFFSET_MISMATCH"
    evidence = await restarted.upload(
        "officer-1",
        ResumeRequest(f"uploads/{meta.request_id}", 5 * MiB),
        chunks(data[5 * MiB :]),
        unit="unit-1",
    )
    assert evidence.sha256 == sha
    assert evidence.size_bytes == len(data)
    client = s3_server.client()
    stored = client.get_object(evidence.bucket, evidence.key, version_id=evidence.version_id)
    assert hashlib.sha256(stored.read()).hexdigest() == sha
    assert await rows(database, "evidence_upload", "WHERE upload_id = :id", id=meta.request_id) == 0
    # Nothing is left in staging, nor unfinished.
    assert list(client.list_objects(restarted.config.staging_bucket, recursive=True)) == []
    for bucket in (restarted.config.bucket, restarted.config.staging_bucket):
        assert client._list_multipart_uploads(bucket).uploads == []


async def test_after_a_restart_the_wrong_rest_of_a_declared_upload_is_data_loss(
    database: Database, blobs: S3Blobs, s3_server: SeaweedS3
) -> None:
    data = os.urandom(6 * MiB)
    meta = metadata(declared_sha256=hashlib.sha256(data).hexdigest())
    restarted = await _cut_then_restart(database, blobs, meta, data[: 5 * MiB + 1])
    with pytest.raises(DataLoss) as mismatch:
        await restarted.upload(
            "officer-1",
            ResumeRequest(f"uploads/{meta.request_id}", 5 * MiB),
            chunks(os.urandom(MiB)),
            unit="unit-1",
        )
    assert mismatch.value.reason == "SHA256_MISMATCH"
    # The completed, unverified object is gone from the content address, the session too.
    listing = s3_server.client().list_objects(
        restarted.config.bucket, prefix=content_key(meta.declared_sha256), include_version=True
    )
    assert list(listing) == []
    assert await rows(database, "evidence_upload", "WHERE upload_id = :id", id=meta.request_id) == 0


async def test_after_a_restart_an_upload_of_stored_content_starts_over(
    database: Database, blobs: S3Blobs
) -> None:
    """Content already stored is only hashed, never written: nothing to hash back."""
    data = os.urandom(5 * MiB + 10)
    sha = hashlib.sha256(data).hexdigest()
    suffix = uuid.uuid4().hex[:8]
    stored = evidence_service(database, blobs, Clock(), suffix)
    await blobs.ensure_bucket(stored.config.bucket, object_lock=True)
    await blobs.ensure_bucket(stored.config.staging_bucket, object_lock=False)
    await stored.upload("officer-1", metadata(declared_sha256=sha), chunks(data), unit="unit-1")
    meta = metadata(declared_sha256=sha)
    restarted = await _cut_then_restart(database, blobs, meta, data, suffix)
    with pytest.raises(FailedPrecondition) as lost:
        await restarted.upload(
            "officer-1",
            ResumeRequest(f"uploads/{meta.request_id}", 5 * MiB),
            chunks(data[5 * MiB :]),
            unit="unit-1",
        )
    assert lost.value.reason == "UPLOAD_STATE_LOST"


async def test_stream_past_the_maximum_is_resource_exhausted_and_aborted(
    database: Database, blobs: S3Blobs, s3_server: SeaweedS3
) -> None:
    suffix = uuid.uuid4().hex[:8]
    service = evidence_service(database, blobs, Clock(), suffix)
    small = EvidenceService(
        uow=lambda: EvidenceTransaction(database.sessions),
        blobs=blobs,
        cases=AnyCase(),
        clock=Clock(),
        config=replace(service.config, max_upload_bytes=6 * MiB),
    )
    await blobs.ensure_bucket(service.config.bucket, object_lock=True)
    await blobs.ensure_bucket(service.config.staging_bucket, object_lock=False)
    meta = metadata()
    with pytest.raises(ResourceExhausted) as too_big:
        await small.upload("officer-1", meta, chunks(os.urandom(7 * MiB)), unit="unit-1")
    assert too_big.value.reason == "UPLOAD_TOO_LARGE"
    client = s3_server.client()
    assert client._list_multipart_uploads(service.config.staging_bucket).uploads == []
    assert list(client.list_objects(service.config.staging_bucket, recursive=True)) == []
    with pytest.raises(NotFound):
        await small.get_upload("officer-1", f"uploads/{meta.request_id}")
