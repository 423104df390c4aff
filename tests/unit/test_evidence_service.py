"""The evidence service's logic on in-memory fakes (tests/fakes/evidence.py): no database,
no S3, no sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from justice.evidence.catalogue import EvidenceScope
from justice.evidence.model import (
    EvidenceConfig,
    Integrity,
    Metadata,
    RetentionMode,
    RetentionRule,
    content_key,
)
from justice.evidence.service import EvidenceService, ResumeRequest
from justice.platform.errors import DataLoss, FailedPrecondition, InvalidArgument, PermissionDenied
from tests.fakes.evidence import (
    Alarms,
    EvidenceTables,
    EvidenceUnit,
    InMemoryBlobs,
    InMemoryUploads,
    KnownCases,
)
from tests.fakes.unit_of_work import Tables

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CASE = "AN.77.EV.000001/26"
BUCKET = "evidence"
CONFIG = EvidenceConfig(
    bucket=BUCKET,
    staging_bucket="staging",
    retention={"standard": RetentionRule(RetentionMode.COMPLIANCE, timedelta(days=30))},
    default_category="standard",
    share_default=timedelta(hours=1),
    share_max=timedelta(days=1),
    max_upload_bytes=1024 * 1024,
    max_chunk_bytes=64 * 1024,
    part_bytes=5 * 1024 * 1024,
    upload_ttl=timedelta(hours=1),
    sign_rehash_max_bytes=1024 * 1024,
)


class World:
    def __init__(
        self,
        *,
        keeps_locks: bool = True,
        blobs: InMemoryBlobs | None = None,
        config: EvidenceConfig = CONFIG,
    ) -> None:
        self.tables = Tables(EvidenceTables())
        self.blobs = blobs or InMemoryBlobs(keeps_locks=keeps_locks)
        self.alarms = Alarms()
        self.service = EvidenceService(
            uow=lambda: EvidenceUnit(self.tables),
            blobs=self.blobs,
            cases=KnownCases({CASE}, {"reports/r1": (CASE, "prosecutor-antwerp")}),
            clock=lambda: NOW,
            config=config,
            alarm=self.alarms,
        )

    async def upload(self, data: bytes, uploader: str = "officer-1001", **meta: object):
        fields: dict[str, object] = {
            "case_number": CASE,
            "media_type": "video/mp4",
            "original_filename": "bodycam.mp4",
            "request_id": hashlib.sha256(data + uploader.encode()).hexdigest()[:32],
            "declared_size": len(data),
        }
        fields.update(meta)
        return await self.service.upload(
            uploader,
            Metadata(**fields),
            _chunks(data),
            unit="unit-a",
        )


async def _chunks(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class HeldParts(InMemoryBlobs):
    """S3 that takes a part in and answers only once `answer` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, data: bytes | memoryview
    ) -> str:
        await self.answer.wait()
        return await super().upload_part(bucket, key, upload_id, number, data)


async def test_a_resume_that_meets_a_stream_letting_go_answers_the_offset_it_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A cut stream keeps the upload until its part in flight commits. A resume that read the
    # upload before that and found it free after must not go on from the offset it read.
    part = CONFIG.part_bytes
    blobs = HeldParts()
    world = World(blobs=blobs, config=dataclasses.replace(CONFIG, max_upload_bytes=4 * part))
    data = b"f" * (2 * part + 10)
    # It ends short, its one part still in flight.
    cut = asyncio.create_task(world.upload(data[:part], declared_size=len(data)))
    await asyncio.sleep(0.05)
    [session] = world.tables.state.uploads.values()
    assert session.committed_offset == 0
    assert not cut.done()

    read = InMemoryUploads.get

    async def read_then_let_the_cut_stream_finish(uploads: InMemoryUploads, key: str) -> object:
        found = await read(uploads, key)
        if not blobs.answer.is_set():
            blobs.answer.set()
            await asyncio.wait([cut])
        return found

    monkeypatch.setattr(InMemoryUploads, "get", read_then_let_the_cut_stream_finish)
    resume = ResumeRequest(session.name, 0)
    with pytest.raises(FailedPrecondition) as answer:
        await world.service.upload("officer-1001", resume, _chunks(b""), unit="unit-a")
    with pytest.raises(FailedPrecondition) as incomplete:
        await cut
    assert incomplete.value.reason == "UPLOAD_INCOMPLETE"
    [stored] = world.tables.state.uploads.values()
    assert stored.committed_offset == part
    assert answer.value.reason == "OFFSET_MISMATCH"
    assert answer.value.metadata["committed_offset"] == str(part)


async def test_an_upload_is_stored_once_at_its_content_address_under_retention() -> None:
    world = World()
    data = b"frame " * 5000
    first = await world.upload(data)
    second = await world.upload(data, uploader="officer-1002")
    sha = hashlib.sha256(data).hexdigest()
    assert (first.sha256, first.key, first.size_bytes) == (sha, content_key(sha), len(data))
    # The same content twice: two records, one object version, locked as the category asks.
    [stored] = world.blobs.versions(BUCKET, content_key(sha))
    assert first.version_id == second.version_id == stored.version_id
    assert stored.data == data
    assert stored.lock == first.retention
    assert first.retention.mode is RetentionMode.COMPLIANCE
    assert first.retention.until == (NOW + timedelta(days=30)).replace(microsecond=0)
    assert world.tables.state.uploads == {}
    assert set(world.tables.state.evidence) == {first.evidence_id, second.evidence_id}


async def test_bytes_that_do_not_hash_to_the_declared_sha256_leave_nothing() -> None:
    world = World()
    with pytest.raises(DataLoss) as refused:
        await world.upload(b"tampered" * 100, declared_sha256="0" * 64)
    assert refused.value.reason == "SHA256_MISMATCH"
    assert world.tables.state.evidence == {}
    assert world.tables.state.uploads == {}
    assert all(not versions for versions in world.blobs.objects.values())


async def test_an_s3_that_drops_the_lock_is_refused_and_raises_an_alert() -> None:
    world = World(keeps_locks=False)
    with pytest.raises(FailedPrecondition) as refused:
        await world.upload(b"unlockable" * 100)
    assert refused.value.reason == "OBJECT_LOCK_NOT_HELD"
    assert world.tables.state.evidence == {}
    assert [kind for kind, _ in world.alarms.raised] == ["EVIDENCE_LOCK_NOT_HELD"]
    # No unlocked copy stays for a later upload to take as locked evidence.
    assert all(not versions for versions in world.blobs.objects.values())


async def test_an_unknown_case_is_refused_before_anything_is_written() -> None:
    world = World()
    with pytest.raises(InvalidArgument) as refused:
        await world.upload(b"x" * 10, case_number="AN.00.UNKNOWN/26")
    assert refused.value.reason == "UNKNOWN_CASE"
    assert world.tables.commits == 0
    assert world.blobs.objects == {}


async def test_an_object_stays_held_while_any_record_of_it_holds_it() -> None:
    world = World()
    data = b"same content " * 100
    first = await world.upload(data)
    second = await world.upload(data, uploader="officer-1002")
    await world.service.set_legal_hold(first.name)
    await world.service.set_legal_hold(second.name)
    [stored] = world.blobs.versions(BUCKET, first.key)
    released = await world.service.release_legal_hold(first.name)
    assert released.legal_hold is False
    assert stored.held is True  # the second record still holds the object
    await world.service.release_legal_hold(second.name)
    assert stored.held is False


async def test_visibility_follows_uploader_unit_and_shares() -> None:
    world = World()
    evidence = await world.upload(b"private " * 100)
    outsider = EvidenceScope(uploader="officer-9", unit="unit-z", office="prosecutor-gent")
    with pytest.raises(PermissionDenied) as refused:
        await world.service.get(evidence.name, outsider)
    assert refused.value.reason == "EVIDENCE_NOT_VISIBLE"
    assert await world.service.get(evidence.name, EvidenceScope(unit="unit-a")) == evidence
    link = await world.service.share(
        "officer-1001", evidence.name, "prosecutor-gent", None, "case transfer"
    )
    assert link.share.expire_time == NOW + CONFIG.share_default
    assert f"versionId={evidence.version_id}" in link.url
    assert (await world.service.get(evidence.name, outsider)).evidence_id == evidence.evidence_id


async def test_a_share_longer_than_the_maximum_is_refused_and_not_recorded() -> None:
    world = World()
    evidence = await world.upload(b"to share " * 100)
    with pytest.raises(InvalidArgument) as refused:
        await world.service.share(
            "officer-1001", evidence.name, "prosecutor-gent", timedelta(days=2), "why"
        )
    assert refused.value.reason == "EXPIRY_TOO_LONG"
    assert world.tables.state.shares == []


async def test_the_sweep_finds_changed_and_missing_objects_and_alerts() -> None:
    world = World()
    intact = await world.upload(b"intact " * 100)
    changed = await world.upload(b"changed " * 100)
    gone = await world.upload(b"gone " * 100)
    world.blobs.versions(BUCKET, changed.key)[0].data = b"rewritten"
    world.blobs.objects[(BUCKET, gone.key)].clear()
    summary = await world.service.sweep()
    assert (summary.objects, summary.intact, summary.mismatched, summary.missing) == (3, 1, 1, 1)
    rows = world.tables.state.evidence
    assert rows[intact.evidence_id].integrity is Integrity.INTACT
    assert rows[changed.evidence_id].integrity is Integrity.MISMATCH
    assert rows[gone.evidence_id].integrity is Integrity.MISSING
    assert sorted(
        subject for kind, subject in world.alarms.raised if kind == "EVIDENCE_INTEGRITY"
    ) == sorted([changed.name, gone.name])
