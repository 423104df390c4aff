"""The evidence service on its real adapters: S3Blobs on SeaweedFS, tables on SQLite/PostgreSQL.

What the gRPC tests cannot stage: S3 being down, and abandoned uploads expiring.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from justice.devstack.seaweed import SeaweedS3
from justice.devstack.supervised import free_tcp_port
from justice.evidence.compose import evidence_config
from justice.evidence.model import Metadata
from justice.evidence.service import EvidenceService, ResumeRequest
from justice.evidence.store import EvidenceTransaction
from justice.platform.blobs import S3Blobs
from justice.platform.config import Settings
from justice.platform.db import Database
from justice.platform.errors import (
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
    Unavailable,
)

MiB = 1024 * 1024


class _AnyCase:
    async def case_known(self, case_number: str) -> bool:
        return True

    async def report_case(self, report: str) -> str | None:
        return None

    async def report_recipient(self, report: str) -> str | None:
        return None


class _Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await db.migrate()
    yield db
    await db.close()


def _service(database: Database, blobs: S3Blobs, clock: _Clock, suffix: str) -> EvidenceService:
    settings = Settings(
        evidence_bucket=f"evi-{suffix}",
        evidence_staging_bucket=f"evi-stage-{suffix}",
        evidence_part_bytes=5 * MiB,
        # Small enough that 10,000 parts of 5 MiB cover it (larger maxima grow the part).
        evidence_max_upload_bytes=1024 * MiB,
    )
    return EvidenceService(
        uow=lambda: EvidenceTransaction(database.sessions),
        blobs=blobs,
        cases=_AnyCase(),
        clock=clock,
        config=evidence_config(settings),
    )


@pytest.fixture
def blobs(s3_server: SeaweedS3) -> Iterator[S3Blobs]:
    store = S3Blobs(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    yield store
    store.close()


def _meta(**overrides: object) -> Metadata:
    values: dict[str, object] = {
        "case_number": "AN.1/26",
        "media_type": "audio/ogg",
        "original_filename": "interview.ogg",
        "request_id": uuid.uuid4().hex,
    }
    values.update(overrides)
    return Metadata(**values)  # type: ignore[arg-type]


async def _chunks(data: bytes, size: int = MiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _rows(database: Database, table: str) -> int:
    async with database.engine.connect() as connection:
        query = text(f"SELECT count(*) FROM {table}")  # noqa: S608 - our own table names
        return int((await connection.execute(query)).scalar_one())


async def test_s3_down_is_unavailable_and_leaves_no_record(database: Database) -> None:
    dead = S3Blobs(f"127.0.0.1:{free_tcp_port()}", "nobody", "nothing", timeout=2)
    try:
        service = _service(database, dead, _Clock(), "down")
        before = (await _rows(database, "evidence"), await _rows(database, "evidence_upload"))
        with pytest.raises(Unavailable) as down:
            await service.upload("officer-1", _meta(), _chunks(b"bytes"), unit="unit-1")
        assert down.value.reason == "OBJECT_STORAGE_UNAVAILABLE"
        after = (await _rows(database, "evidence"), await _rows(database, "evidence_upload"))
        assert after == before
    finally:
        dead.close()


async def test_abandoned_upload_expires_and_its_multipart_upload_is_aborted(
    database: Database, blobs: S3Blobs, s3_server: SeaweedS3
) -> None:
    clock = _Clock()
    suffix = uuid.uuid4().hex[:8]
    service = _service(database, blobs, clock, suffix)
    config = service.config
    await blobs.ensure_bucket(config.bucket, object_lock=True)
    await blobs.ensure_bucket(config.staging_bucket, object_lock=False)
    data = os.urandom(6 * MiB)
    meta = _meta(declared_sha256=hashlib.sha256(data).hexdigest())

    class Cut(Exception):
        pass

    async def cut_after_one_part() -> AsyncIterator[bytes]:
        async for chunk in _chunks(data[: 5 * MiB + 1]):
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


async def test_resume_after_a_restart_starts_over_honestly(
    database: Database, blobs: S3Blobs
) -> None:
    suffix = uuid.uuid4().hex[:8]
    first = _service(database, blobs, _Clock(), suffix)
    await blobs.ensure_bucket(first.config.bucket, object_lock=True)
    await blobs.ensure_bucket(first.config.staging_bucket, object_lock=False)
    data = os.urandom(5 * MiB + 10)
    meta = _meta()

    async def cut() -> AsyncIterator[bytes]:
        async for chunk in _chunks(data):
            yield chunk
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        await first.upload("officer-1", meta, cut(), unit="unit-1")
    # A new process: the running hash at the committed offset is gone with the old one.
    restarted = _service(database, blobs, _Clock(), suffix)
    with pytest.raises(FailedPrecondition) as lost:
        await restarted.upload(
            "officer-1",
            ResumeRequest(f"uploads/{meta.request_id}", 5 * MiB),
            _chunks(data[5 * MiB :]),
            unit="unit-1",
        )
    assert lost.value.reason == "UPLOAD_STATE_LOST"
    evidence = await restarted.upload("officer-1", _meta(), _chunks(data), unit="unit-1")
    assert evidence.sha256 == hashlib.sha256(data).hexdigest()


async def test_stream_past_the_maximum_is_resource_exhausted_and_aborted(
    database: Database, blobs: S3Blobs, s3_server: SeaweedS3
) -> None:
    suffix = uuid.uuid4().hex[:8]
    service = _service(database, blobs, _Clock(), suffix)
    small = EvidenceService(
        uow=lambda: EvidenceTransaction(database.sessions),
        blobs=blobs,
        cases=_AnyCase(),
        clock=_Clock(),
        config=replace(service.config, max_upload_bytes=6 * MiB),
    )
    await blobs.ensure_bucket(service.config.bucket, object_lock=True)
    await blobs.ensure_bucket(service.config.staging_bucket, object_lock=False)
    meta = _meta()
    with pytest.raises(ResourceExhausted) as too_big:
        await small.upload("officer-1", meta, _chunks(os.urandom(7 * MiB)), unit="unit-1")
    assert too_big.value.reason == "UPLOAD_TOO_LARGE"
    client = s3_server.client()
    assert client._list_multipart_uploads(service.config.staging_bucket).uploads == []
    assert list(client.list_objects(service.config.staging_bucket, recursive=True)) == []
    with pytest.raises(NotFound):
        await small.get_upload("officer-1", f"uploads/{meta.request_id}")
