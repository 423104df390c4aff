"""EvidenceService through a real grpc.aio server over mTLS, on real SeaweedFS.

Everything the store claims is checked on the S3 server directly, with the minio SDK.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from minio import Minio
from minio.error import S3Error
from rich.console import Console
from sqlalchemy import text

from justice.access.v1 import access_pb2 as apb
from justice.access.v1 import access_pb2_grpc
from justice.app import Application
from justice.cli.evidence import upload_file
from justice.cli.offline import verify_file
from justice.devstack.pki import DevPki
from justice.devstack.seaweed import SeaweedS3
from justice.evidence.model import content_key
from justice.evidence.v1 import evidence_pb2 as pb
from justice.evidence.v1 import evidence_pb2_grpc
from justice.platform.config import Settings
from justice.platform.server import BoundServer
from justice.reports.v1 import reports_pb2 as rpb
from justice.reports.v1 import reports_pb2_grpc
from tests.api.conftest import (
    ChannelFactory,
    Enrol,
    client_credentials,
    outbox_message,
    with_evidence,
)
from tests.api.evidence_client import (
    CASE,
    PURPOSE,
    MiB,
    Stub,
    meta,
    report_draft,
    requests,
    upload,
)
from tests.api.rich_status import rich_error
from tests.evidence_env import http_get

PART = 5 * MiB


@pytest.fixture(scope="module")
def settings(settings: Settings, s3_server: SeaweedS3) -> Settings:
    return with_evidence(
        settings,
        s3_server,
        {"part_bytes": PART, "max_upload_bytes": 300 * MiB, "share_max_seconds": 3600},
    )


@pytest.fixture(scope="module")
def s3(s3_server: SeaweedS3) -> Minio:
    return s3_server.client()


@pytest.fixture(scope="module")
async def stub(grpc_channel: grpc.aio.Channel) -> Stub:
    return evidence_pb2_grpc.EvidenceServiceStub(grpc_channel)


@pytest.fixture(scope="module")
async def reports(grpc_channel: grpc.aio.Channel) -> reports_pb2_grpc.ReportServiceStub:
    return reports_pb2_grpc.ReportServiceStub(grpc_channel)


@pytest.fixture(scope="module")
async def case_report(reports: reports_pb2_grpc.ReportServiceStub) -> rpb.Report:
    """A draft that makes CASE known to the platform."""
    return await reports.CreateReport(
        rpb.CreateReportRequest(report=report_draft([]), request_id=str(uuid.uuid4()))
    )


async def count(app: Application, sql: str, **params: object) -> int:
    async with app.database.engine.connect() as connection:
        return int((await connection.execute(text(sql), params)).scalar_one())


def versions(s3: Minio, bucket: str, key: str) -> list[str]:
    found = s3.list_objects(bucket, prefix=key, include_version=True)
    return [o.version_id or "" for o in found if o.object_name == key]


def read_back(s3: Minio, bucket: str, sha256: str) -> tuple[str, int]:
    """Hash the stored object straight from S3, not through our service."""
    response = s3.get_object(bucket, content_key(sha256))
    digest, size = hashlib.sha256(), 0
    try:
        for block in response.stream(MiB):
            digest.update(block)
            size += len(block)
    finally:
        response.close()
        response.release_conn()
    return digest.hexdigest(), size


def _pseudo_random(size: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    left = size
    while left:
        n = min(4 * MiB, left)
        yield rng.randbytes(n)
        left -= n


@pytest.mark.usefixtures("case_report")
async def test_200_mb_upload_reads_back_from_s3_with_the_same_sha256(
    stub: Stub, s3: Minio, settings: Settings, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the large transfer does not depend on the database; once is enough")
    size = 200 * 1000 * 1000
    digest = hashlib.sha256()

    async def stream() -> AsyncIterator[pb.UploadEvidenceRequest]:
        yield pb.UploadEvidenceRequest(metadata=meta(declared_size=size))
        for block in _pseudo_random(size, seed=7):
            digest.update(block)
            for start in range(0, len(block), 2 * MiB):
                yield pb.UploadEvidenceRequest(chunk=block[start : start + 2 * MiB])

    evidence = await stub.UploadEvidence(stream())
    assert evidence.size_bytes == size
    assert evidence.sha256 == digest.hexdigest()
    assert read_back(s3, settings.evidence.bucket, evidence.sha256) == (evidence.sha256, size)
    stat = s3.stat_object(settings.evidence.bucket, content_key(evidence.sha256))
    retention = s3.get_object_retention(
        settings.evidence.bucket, content_key(evidence.sha256), version_id=stat.version_id
    )
    assert retention is not None
    assert retention.mode == "COMPLIANCE"


@pytest.mark.usefixtures("case_report")
async def test_same_content_twice_is_one_object_and_two_records(
    stub: Stub, s3: Minio, settings: Settings
) -> None:
    data = os.urandom(7 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    first = await upload(stub, data, declared_sha256=sha)
    # Undeclared: it goes through the staging bucket and finds the content already there.
    second = await upload(stub, data)
    third = await upload(stub, data, declared_sha256=sha)
    assert len({first.name, second.name, third.name}) == 3
    assert first.sha256 == second.sha256 == third.sha256 == sha
    assert len(versions(s3, settings.evidence.bucket, content_key(sha))) == 1
    assert list(s3.list_objects(settings.evidence.staging_bucket, recursive=True)) == []


@pytest.mark.usefixtures("case_report")
async def test_undeclared_upload_lands_at_its_content_address_locked(
    stub: Stub, s3: Minio, settings: Settings
) -> None:
    data = os.urandom(11 * MiB + 3)
    evidence = await upload(stub, data, category="traffic")
    assert evidence.sha256 == hashlib.sha256(data).hexdigest()
    assert evidence.retention_mode == pb.GOVERNANCE
    key = content_key(evidence.sha256)
    assert read_back(s3, settings.evidence.bucket, evidence.sha256) == (
        evidence.sha256,
        len(data),
    )
    retention = s3.get_object_retention(settings.evidence.bucket, key)
    assert retention is not None
    assert retention.mode == "GOVERNANCE"


@pytest.mark.usefixtures("case_report")
async def test_cut_upload_resumes_from_the_committed_offset(
    stub: Stub,
    s3: Minio,
    settings: Settings,
    application: Application,
    grpc_create_channel: ChannelFactory,
) -> None:
    data = os.urandom(3 * PART + 123_456)
    sha = hashlib.sha256(data).hexdigest()
    m = meta(declared_sha256=sha, declared_size=len(data))
    name = f"uploads/{m.request_id}"
    sent_enough = asyncio.Event()

    async def cut_stream() -> AsyncIterator[pb.UploadEvidenceRequest]:
        yield pb.UploadEvidenceRequest(metadata=m)
        async for request in requests(None, data[: 2 * PART + MiB]):
            yield request
        sent_enough.set()
        await asyncio.Event().wait()  # the connection drops before the rest

    # Its own connection, dropped below as a network would drop it.
    cut_channel = grpc_create_channel()
    call = evidence_pb2_grpc.EvidenceServiceStub(cut_channel).UploadEvidence(cut_stream())
    await sent_enough.wait()
    deadline = time.monotonic() + 20
    state = await stub.GetUpload(pb.GetUploadRequest(name=name))
    while state.committed_offset < PART and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        state = await stub.GetUpload(pb.GetUploadRequest(name=name))
    await cut_channel.close()
    with pytest.raises((asyncio.CancelledError, grpc.aio.AioRpcError)):
        await call
    # The part in flight at the cut still commits, in its own time, and the cut call's
    # handler holds the upload until then: a resume without bytes answers UPLOAD_BUSY (or
    # OFFSET_MISMATCH while the offset moves) until it has let go, then UPLOAD_INCOMPLETE.
    offset = (await stub.GetUpload(pb.GetUploadRequest(name=name))).committed_offset
    while True:
        probe = pb.UploadEvidenceRequest(resume=pb.ResumeUpload(upload=name, offset=offset))
        with pytest.raises(grpc.aio.AioRpcError) as answer:
            await stub.UploadEvidence(requests(probe, b""))
        details = rich_error(answer.value)
        offset = int(details.metadata.get("committed_offset", offset))
        if details.reason == "UPLOAD_INCOMPLETE":
            break
        assert details.reason in ("UPLOAD_BUSY", "OFFSET_MISMATCH")
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    state = await stub.GetUpload(pb.GetUploadRequest(name=name))
    assert state.committed_offset == offset
    # Whole parts only (the part in flight at the cut included); the rest is re-sent.
    assert state.committed_offset in (PART, 2 * PART)
    assert state.metadata.declared_sha256 == sha

    # Resuming elsewhere than the committed offset is refused with where to resume.
    wrong = pb.UploadEvidenceRequest(resume=pb.ResumeUpload(upload=name, offset=0))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.UploadEvidence(requests(wrong, b"x"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rich_error(refused.value).metadata["committed_offset"] == str(state.committed_offset)

    resume = pb.UploadEvidenceRequest(resume=pb.ResumeUpload(upload=name, offset=offset))
    evidence = await stub.UploadEvidence(requests(resume, data[offset:]))
    assert evidence.sha256 == sha
    assert read_back(s3, settings.evidence.bucket, sha) == (sha, len(data))
    assert (
        await count(
            application, "SELECT count(*) FROM evidence_upload WHERE upload_id = :u", u=m.request_id
        )
        == 0
    )
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stub.GetUpload(pb.GetUploadRequest(name=name))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.usefixtures("case_report")
async def test_client_helper_resumes_by_itself(
    stub: Stub, s3: Minio, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(os.urandom(2 * PART + 17))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    resumed: list[int] = []
    evidence = await upload_file(
        stub,
        path,
        meta(declared_sha256=sha, declared_size=path.stat().st_size),
        on_resume=resumed.append,
    )
    assert evidence.sha256 == sha
    assert resumed == []


@pytest.mark.usefixtures("case_report")
async def test_declared_hash_mismatch_leaves_no_object_and_no_record(
    stub: Stub, s3: Minio, settings: Settings, application: Application
) -> None:
    data = os.urandom(6 * MiB)
    declared = hashlib.sha256(b"something else").hexdigest()
    m = meta(declared_sha256=declared)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.UploadEvidence(requests(pb.UploadEvidenceRequest(metadata=m), data))
    assert failed.value.code() == grpc.StatusCode.DATA_LOSS
    assert rich_error(failed.value).reason == "SHA256_MISMATCH"

    actual = hashlib.sha256(data).hexdigest()
    for sha in (declared, actual):
        assert versions(s3, settings.evidence.bucket, content_key(sha)) == []
    uploads = s3._list_multipart_uploads(settings.evidence.bucket).uploads
    assert [u for u in uploads if u.object_name == content_key(declared)] == []
    assert (
        await count(
            application, "SELECT count(*) FROM evidence WHERE request_id = :r", r=m.request_id
        )
        == 0
    )
    assert (
        await count(
            application, "SELECT count(*) FROM evidence_upload WHERE upload_id = :r", r=m.request_id
        )
        == 0
    )


@pytest.mark.usefixtures("case_report")
async def test_declared_size_mismatch_is_invalid_and_leaves_nothing(
    stub: Stub, application: Application
) -> None:
    m = meta(declared_size=5)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.UploadEvidence(requests(pb.UploadEvidenceRequest(metadata=m), b"123456"))
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rich_error(failed.value).reason == "SIZE_MISMATCH"
    assert (
        await count(
            application, "SELECT count(*) FROM evidence WHERE request_id = :r", r=m.request_id
        )
        == 0
    )


@pytest.mark.usefixtures("case_report")
async def test_the_s3_server_refuses_deleting_or_replacing_a_locked_version(
    stub: Stub, s3: Minio, settings: Settings
) -> None:
    data = os.urandom(1000)
    evidence = await upload(stub, data)
    key = content_key(evidence.sha256)
    [version] = versions(s3, settings.evidence.bucket, key)
    with pytest.raises(S3Error) as refused:
        s3.remove_object(settings.evidence.bucket, key, version_id=version)
    assert refused.value.code == "AccessDenied"
    # Writing the key again only adds a version; the evidence version is untouched, and
    # the service reads the version it recorded.
    s3.put_object(settings.evidence.bucket, key, io.BytesIO(b"forged"), 6)
    got = s3.get_object(settings.evidence.bucket, key, version_id=version).read()
    assert got == data
    stream = stub.DownloadEvidence(pb.DownloadEvidenceRequest(name=evidence.name), metadata=PURPOSE)
    assert b"".join([r.chunk async for r in stream]) == data


@pytest.mark.usefixtures("case_report")
async def test_download_ranges_and_sha256_in_response_metadata(stub: Stub) -> None:
    data = os.urandom(3 * MiB + 5)
    evidence = await upload(stub, data)
    whole = stub.DownloadEvidence(pb.DownloadEvidenceRequest(name=evidence.name), metadata=PURPOSE)
    headers = dict(await whole.initial_metadata())
    assert headers["x-evidence-sha256"] == hashlib.sha256(data).hexdigest()
    assert headers["x-evidence-size"] == str(len(data))
    chunks = [r.chunk async for r in whole]
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= MiB

    part = stub.DownloadEvidence(
        pb.DownloadEvidenceRequest(name=evidence.name, offset=MiB + 1, length=1000),
        metadata=PURPOSE,
    )
    assert dict(await part.initial_metadata())["x-evidence-range"] == f"{MiB + 1}-{MiB + 1000}"
    assert b"".join([r.chunk async for r in part]) == data[MiB + 1 : MiB + 1001]

    beyond = stub.DownloadEvidence(
        pb.DownloadEvidenceRequest(name=evidence.name, offset=len(data) + 1), metadata=PURPOSE
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in beyond:
            pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.usefixtures("case_report")
async def test_get_and_list_filter_by_case_report_and_media_type(
    stub: Stub, case_report: rpb.Report
) -> None:
    photo = await upload(stub, os.urandom(100), media_type="image/jpeg", report=case_report.name)
    assert (
        await stub.GetEvidence(pb.GetEvidenceRequest(name=photo.name), metadata=PURPOSE)
    ) == photo
    listed = await stub.ListEvidence(
        pb.ListEvidenceRequest(
            filter=f'report = "{case_report.name}" AND media_type = "image/jpeg"'
        ),
        metadata=PURPOSE,
    )
    assert [e.name for e in listed.evidence] == [photo.name]
    by_case = await stub.ListEvidence(
        pb.ListEvidenceRequest(filter=f'case_number = "{CASE}"'), metadata=PURPOSE
    )
    assert photo.name in [e.name for e in by_case.evidence]
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetEvidence(pb.GetEvidenceRequest(name="evidence/nope"), metadata=PURPOSE)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.usefixtures("case_report")
async def test_legal_hold_is_set_and_released_on_the_s3_object(
    stub: Stub, s3: Minio, settings: Settings, grpc_create_channel: ChannelFactory
) -> None:
    evidence = await upload(stub, os.urandom(2000))
    key = content_key(evidence.sha256)
    supervisor = grpc_create_channel(principal="custody-supervisor-2101")
    prosecutor = grpc_create_channel(principal="prosecutor-antwerp")
    # The prosecutor acts on what was shared with (or submitted to) the office.
    await stub.ShareEvidence(
        pb.ShareEvidenceRequest(name=evidence.name, partner="prosecutor-antwerp", purpose="case"),
        metadata=PURPOSE,
    )
    try:
        held = await evidence_pb2_grpc.EvidenceServiceStub(supervisor).SetLegalHold(
            pb.SetLegalHoldRequest(name=evidence.name)
        )
        assert held.legal_hold
        assert s3.is_object_legal_hold_enabled(settings.evidence.bucket, key)
        released = await evidence_pb2_grpc.EvidenceServiceStub(prosecutor).ReleaseLegalHold(
            pb.ReleaseLegalHoldRequest(name=evidence.name)
        )
        assert not released.legal_hold
        assert not s3.is_object_legal_hold_enabled(settings.evidence.bucket, key)
    finally:
        await supervisor.close()
        await prosecutor.close()


@pytest.mark.usefixtures("case_report")
async def test_share_link_works_with_plain_http_then_expires_and_is_recorded(
    stub: Stub, application: Application
) -> None:
    data = os.urandom(4096)
    evidence = await upload(stub, data)
    shared = await stub.ShareEvidence(
        pb.ShareEvidenceRequest(
            name=evidence.name,
            partner="prosecutor-antwerp",
            expiry=Duration(seconds=2),
            purpose="trial preparation",
        ),
        metadata=PURPOSE,
    )
    assert await asyncio.to_thread(http_get, shared.url) == (200, data)
    await asyncio.sleep(3)
    assert (await asyncio.to_thread(http_get, shared.url))[0] == 403
    evidence_id = evidence.name.removeprefix("evidence/")
    sql = (
        "SELECT count(*) FROM evidence_share WHERE evidence_id = :e AND partner = :p"
        " AND sharer = 'officer-1001' AND purpose = 'trial preparation'"
    )
    assert await count(application, sql, e=evidence_id, p="prosecutor-antwerp") == 1

    with pytest.raises(grpc.aio.AioRpcError) as too_long:
        await stub.ShareEvidence(
            pb.ShareEvidenceRequest(
                name=evidence.name,
                partner="prosecutor-antwerp",
                expiry=Duration(seconds=7200),
                purpose="x",
            ),
            metadata=PURPOSE,
        )
    assert too_long.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rich_error(too_long.value).reason == "EXPIRY_TOO_LONG"


@pytest.mark.usefixtures("case_report")
async def test_verify_rehashes_and_flags_a_mismatch(stub: Stub, application: Application) -> None:
    evidence = await upload(stub, os.urandom(3000))
    ok = await stub.VerifyEvidence(pb.VerifyEvidenceRequest(name=evidence.name))
    assert ok.integrity == pb.INTACT
    assert ok.stored_sha256 == evidence.sha256

    # Bit rot cannot be staged on a locked object; a record that no longer matches can.
    await _corrupt_record(application, evidence.name)
    bad = await stub.VerifyEvidence(pb.VerifyEvidenceRequest(name=evidence.name))
    assert bad.integrity == pb.MISMATCH
    assert bad.stored_sha256 == evidence.sha256
    assert (
        await stub.GetEvidence(pb.GetEvidenceRequest(name=evidence.name), metadata=PURPOSE)
    ).integrity == (pb.MISMATCH)
    assert application.evidence is not None
    summary = await application.evidence.sweep()
    assert summary.mismatched >= 1


async def _corrupt_record(app: Application, name: str) -> None:
    async with app.database.engine.begin() as connection:
        await connection.execute(
            text("UPDATE evidence SET sha256 = :s WHERE evidence_id = :e"),
            {"s": "0" * 64, "e": name.removeprefix("evidence/")},
        )


# ----- bad input -----


async def _status(
    stub: Stub, requests: AsyncIterator[pb.UploadEvidenceRequest]
) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.UploadEvidence(requests)
    details = rich_error(failed.value)
    return failed.value.code(), details.reason, details.fields


async def _messages(*items: pb.UploadEvidenceRequest) -> AsyncIterator[pb.UploadEvidenceRequest]:
    for item in items:
        yield item


@pytest.mark.usefixtures("case_report")
async def test_bad_uploads_are_refused_with_reasons(
    stub: Stub, application: Application, settings: Settings
) -> None:
    metadata = pb.UploadEvidenceRequest
    chunk = pb.UploadEvidenceRequest(chunk=b"abc")
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    before = await count(application, "SELECT count(*) FROM evidence")
    uploads_before = await count(application, "SELECT count(*) FROM evidence_upload")

    assert (await _status(stub, _messages(metadata(metadata=meta()))))[:2] == (
        invalid,
        "EMPTY_UPLOAD",
    )
    assert (await _status(stub, _messages()))[:2] == (invalid, "METADATA_MISSING")
    assert (await _status(stub, _messages(chunk, metadata(metadata=meta()))))[:2] == (
        invalid,
        "METADATA_MISSING",
    )
    assert (await _status(stub, _messages(metadata(metadata=meta()), chunk, metadata())))[:2] == (
        invalid,
        "UNEXPECTED_MESSAGE",
    )
    code, reason, fields = await _status(
        stub, _messages(metadata(metadata=meta(case_number="NO.SUCH.CASE/99")), chunk)
    )
    assert (code, reason) == (invalid, "UNKNOWN_CASE")
    assert "metadata.case_number" in fields
    code, reason, fields = await _status(
        stub, _messages(metadata(metadata=meta(report="reports/nosuchreport")), chunk)
    )
    assert (code, reason) == (invalid, "UNKNOWN_REPORT")
    big = pb.UploadEvidenceRequest(chunk=b"x" * (settings.evidence.max_chunk_bytes + 1))
    assert (await _status(stub, _messages(metadata(metadata=meta()), big)))[:2] == (
        invalid,
        "CHUNK_TOO_LARGE",
    )
    code, reason, fields = await _status(
        stub,
        _messages(
            metadata(metadata=meta(media_type="video", request_id="short", declared_sha256="x"))
        ),
    )
    assert code == invalid
    assert {"metadata.media_type", "metadata.request_id", "metadata.declared_sha256"} <= set(fields)
    code, reason, _ = await _status(
        stub,
        _messages(metadata(metadata=meta(declared_size=settings.evidence.max_upload_bytes + 1))),
    )
    assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "UPLOAD_TOO_LARGE")
    assert await count(application, "SELECT count(*) FROM evidence") == before
    assert await count(application, "SELECT count(*) FROM evidence_upload") == uploads_before


@pytest.mark.usefixtures("case_report")
async def test_retry_with_the_same_request_id_returns_the_same_evidence(stub: Stub) -> None:
    m = meta()
    data = os.urandom(500)
    first = await stub.UploadEvidence(requests(pb.UploadEvidenceRequest(metadata=m), data))
    again = await stub.UploadEvidence(requests(pb.UploadEvidenceRequest(metadata=m), data))
    assert again.name == first.name


# ----- reports carry the evidence -----


async def test_signed_report_covers_its_evidence_and_verifies_offline(
    stub: Stub,
    reports: reports_pb2_grpc.ReportServiceStub,
    application: Application,
    pki: DevPki,
    tmp_path: Path,
    case_report: rpb.Report,
) -> None:
    video, photo = os.urandom(300_000), os.urandom(20_000)
    v = await upload(stub, video, report=case_report.name)
    p = await upload(stub, photo, media_type="image/jpeg", original_filename="scene.jpg")
    draft = await reports.CreateReport(
        rpb.CreateReportRequest(
            report=report_draft([rpb.Attachment(evidence=v.name), rpb.Attachment(evidence=p.name)]),
            request_id=str(uuid.uuid4()),
        )
    )
    signed = await reports.SignReport(rpb.SignReportRequest(name=draft.name))
    assert [(a.evidence, a.sha256, a.size_bytes, a.media_type) for a in signed.attachments] == [
        (v.name, v.sha256, len(video), "video/mp4"),
        (p.name, p.sha256, len(photo), "image/jpeg"),
    ]
    exported = await reports.ExportReport(
        rpb.ExportReportRequest(name=signed.name),
        metadata=(("x-justice-purpose", "offline verification test"),),
    )
    assert v.sha256.encode() in exported.signed_xml

    report_file = tmp_path / exported.filename
    report_file.write_bytes(exported.signed_xml)
    evidence_dir = tmp_path / "evidence"
    evidence_dir.mkdir()
    (evidence_dir / f"{v.name.removeprefix('evidence/')}.mp4").write_bytes(video)
    (evidence_dir / "renamed-photo.jpg").write_bytes(photo)  # found by its hash
    quiet = Console(quiet=True)
    assert verify_file(report_file, pki.ca_path, quiet, evidence_dir)

    changed = bytearray(video)
    changed[1000] ^= 1
    (evidence_dir / f"{v.name.removeprefix('evidence/')}.mp4").write_bytes(bytes(changed))
    assert not verify_file(report_file, pki.ca_path, quiet, evidence_dir)
    (evidence_dir / f"{v.name.removeprefix('evidence/')}.mp4").unlink()
    assert not verify_file(report_file, pki.ca_path, quiet, evidence_dir)

    # Submitted, the evidence goes to the prosecutor as links (recorded shares), not bytes.
    await reports.SubmitReport(rpb.SubmitReportRequest(name=signed.name))
    row = await outbox_message(application, f"{signed.name}@{signed.version}")
    links = json.loads(row.links)
    assert [(name, sha) for name, _, sha, _, _ in links] == [(v.name, v.sha256), (p.name, p.sha256)]
    assert len(row.payload) < len(photo)  # the report itself, not the evidence
    assert await asyncio.to_thread(http_get, links[0][1]) == (200, video)
    for item in (v, p):
        shares = await count(
            application,
            "SELECT count(*) FROM evidence_share WHERE evidence_id = :e AND partner = :p",
            e=item.name.removeprefix("evidence/"),
            p="prosecutor-antwerp",
        )
        assert shares == 1


async def test_sign_report_refuses_missing_or_corrupt_evidence(
    stub: Stub,
    reports: reports_pb2_grpc.ReportServiceStub,
    application: Application,
    case_report: rpb.Report,
) -> None:
    missing = await reports.CreateReport(
        rpb.CreateReportRequest(
            report=report_draft([rpb.Attachment(evidence="evidence/doesnotexist")]),
            request_id=str(uuid.uuid4()),
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reports.SignReport(rpb.SignReportRequest(name=missing.name))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rich_error(refused.value).reason == "EVIDENCE_MISSING"

    evidence = await upload(stub, os.urandom(1234))
    corrupt = await reports.CreateReport(
        rpb.CreateReportRequest(
            report=report_draft([rpb.Attachment(evidence=evidence.name)]),
            request_id=str(uuid.uuid4()),
        )
    )
    await _corrupt_record(application, evidence.name)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reports.SignReport(rpb.SignReportRequest(name=corrupt.name))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rich_error(refused.value).reason == "EVIDENCE_CORRUPT"
    still = await reports.GetReport(
        rpb.GetReportRequest(name=corrupt.name), metadata=(("x-justice-purpose", "test"),)
    )
    assert still.state == rpb.DRAFT


async def test_other_officer_cannot_resume_or_see_my_upload(
    grpc_create_channel: ChannelFactory, stub: Stub
) -> None:
    channel = grpc_create_channel(principal="officer-1002")
    try:
        other = evidence_pb2_grpc.EvidenceServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await other.GetUpload(pb.GetUploadRequest(name=f"uploads/{uuid.uuid4().hex}"))
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await channel.close()


# ----- who sees what (resource conditions of the rule table) -----


async def _drain(call: object) -> None:
    """Await a unary call, or read a streaming one to its end."""
    if hasattr(call, "__aiter__"):
        async for _ in call:  # type: ignore[attr-defined]
            pass
    else:
        await call  # type: ignore[misc]


async def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await _drain(call)
    return failed.value.code(), rich_error(failed.value).reason


@pytest.mark.usefixtures("case_report")
async def test_evidence_is_visible_to_its_unit_and_the_office_it_was_shared_with(
    stub: Stub, grpc_create_channel: ChannelFactory, enrol: Enrol
) -> None:
    from justice.security.principal import Role

    evidence = await upload(stub, os.urandom(2048))
    name = evidence.name
    # officer-1001's unit, as the dev registry names it.
    colleague = await enrol(
        "officer-1001-colleague",
        frozenset({Role.REPORT_WRITER}),
        unit="pz-antwerpen-team-a",
        unit_name="PZ Antwerpen/Team A",
    )
    channels = {
        who: grpc_create_channel(principal=who)
        for who in ("officer-1002", colleague, "prosecutor-antwerp", "auditor-4001")
    }
    try:
        other, mate, office, auditor = (
            evidence_pb2_grpc.EvidenceServiceStub(c) for c in channels.values()
        )
        hidden = (grpc.StatusCode.PERMISSION_DENIED, "EVIDENCE_NOT_VISIBLE")
        # Another unit: refused on every resource, and left out of lists.
        get = pb.GetEvidenceRequest(name=name)
        assert await _code(other.GetEvidence(get, metadata=PURPOSE)) == hidden
        download = pb.DownloadEvidenceRequest(name=name)
        assert await _code(other.DownloadEvidence(download, metadata=PURPOSE)) == hidden
        verify = pb.VerifyEvidenceRequest(name=name)
        assert await _code(other.VerifyEvidence(verify)) == hidden
        share = pb.ShareEvidenceRequest(name=name, partner="court-brussels", purpose="x")
        assert await _code(other.ShareEvidence(share, metadata=PURPOSE)) == hidden
        by_case = pb.ListEvidenceRequest(filter=f'case_number = "{CASE}"', page_size=1000)
        listed = await other.ListEvidence(by_case, metadata=PURPOSE)
        assert name not in [e.name for e in listed.evidence]
        # The uploader's unit sees it, and the record names uploader and unit.
        seen = await mate.GetEvidence(get, metadata=PURPOSE)
        assert (seen.name, seen.uploader) == (name, "officer-1001")
        assert name in [
            e.name for e in (await mate.ListEvidence(by_case, metadata=PURPOSE)).evidence
        ]
        # The prosecutor's office: only once it was shared with it.
        assert await _code(office.GetEvidence(get, metadata=PURPOSE)) == hidden
        hold = pb.SetLegalHoldRequest(name=name)
        assert await _code(office.SetLegalHold(hold)) == hidden
        await stub.ShareEvidence(
            pb.ShareEvidenceRequest(name=name, partner="prosecutor-antwerp", purpose="trial"),
            metadata=PURPOSE,
        )
        assert (await office.GetEvidence(get, metadata=PURPOSE)).name == name
        assert (await office.SetLegalHold(hold)).legal_hold
        # An auditor verifies anything (no condition in the rule table).
        assert (await auditor.VerifyEvidence(verify)).integrity == pb.INTACT
    finally:
        for channel in channels.values():
            await channel.close()


@pytest.mark.usefixtures("case_report")
async def test_a_stream_ending_short_of_its_declared_size_stays_resumable(
    stub: Stub, s3: Minio, settings: Settings
) -> None:
    """A cut connection ends the request stream just like a finished one: with a declared
    size the server tells them apart, keeps the whole parts and never stores a short file."""
    data = os.urandom(2 * PART + 1000)
    sha = hashlib.sha256(data).hexdigest()
    m = meta(declared_size=len(data), declared_sha256=sha)
    short = requests(pb.UploadEvidenceRequest(metadata=m), data[: PART + 7])
    with pytest.raises(grpc.aio.AioRpcError) as cut:
        await stub.UploadEvidence(short)
    assert cut.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = rich_error(cut.value)
    assert details.reason == "UPLOAD_INCOMPLETE"
    assert details.metadata["committed_offset"] == str(PART)
    assert versions(s3, settings.evidence.bucket, content_key(sha)) == []

    name = f"uploads/{m.request_id}"
    resume = pb.UploadEvidenceRequest(resume=pb.ResumeUpload(upload=name, offset=PART))
    evidence = await stub.UploadEvidence(requests(resume, data[PART:]))
    assert evidence.sha256 == sha
    assert read_back(s3, settings.evidence.bucket, sha) == (sha, len(data))


class _CuttableLink:
    """A TCP proxy in front of the server: cut() drops every connection mid-stream, as a
    failing network does; new connections go through again."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        self._writers += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while block := await source.read(256 * 1024):
                    sink.write(block)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()


@pytest.mark.usefixtures("case_report")
async def test_cli_upload_resumes_after_the_connection_really_drops(
    grpc_server: BoundServer, pki: DevPki, s3: Minio, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "bodycam.mp4"
    data = os.urandom(4 * PART + 12_345)
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    link = _CuttableLink(grpc_server.port)
    proxy = await link.start()
    options = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500)]
    channel = grpc.aio.secure_channel(
        f"localhost:{link.port}", client_credentials(pki, "officer-1001"), options
    )
    sent = 0
    resumed: list[int] = []
    sent_before_resume: list[int] = []

    def on_bytes(n: int) -> None:
        nonlocal sent
        sent += n
        if not resumed and sent >= 3 * PART and link._writers:
            asyncio.get_running_loop().call_soon(link.cut)

    def on_resume(offset: int) -> None:
        resumed.append(offset)
        sent_before_resume.append(sent)

    try:
        evidence = await upload_file(
            evidence_pb2_grpc.EvidenceServiceStub(channel),
            path,
            meta(declared_size=len(data), declared_sha256=sha),
            on_bytes=on_bytes,
            on_resume=on_resume,
        )
    finally:
        await channel.close()
        proxy.close()
    assert evidence.sha256 == sha
    assert read_back(s3, settings.evidence.bucket, sha) == (sha, len(data))
    # It went on from whole committed parts, not from zero: after the last resume exactly
    # the bytes beyond the committed offset were sent.
    assert resumed
    assert resumed[-1] > 0
    assert resumed[-1] % PART == 0
    assert sent - sent_before_resume[-1] == len(data) - resumed[-1]


@pytest.mark.usefixtures("case_report")
async def test_a_departure_ends_an_upload_already_running(
    grpc_create_channel: ChannelFactory, enrol: Enrol
) -> None:
    """Identity is checked as a call starts; a revocation must reach the calls already
    running too, or a departing officer's upload or download would run to its end."""
    from justice.security.principal import Role

    leaver = await enrol(
        "officer-1001-leaver",
        frozenset({Role.REPORT_WRITER}),
        unit="pz-antwerpen-team-a",
        unit_name="PZ Antwerpen/Team A",
    )
    sent, never = asyncio.Event(), asyncio.Event()

    async def requests() -> AsyncIterator[pb.UploadEvidenceRequest]:
        yield pb.UploadEvidenceRequest(metadata=meta())
        yield pb.UploadEvidenceRequest(chunk=os.urandom(1024))
        sent.set()
        await never.wait()  # the officer's client keeps the stream open

    async with (
        grpc_create_channel(principal=leaver) as channel,
        grpc_create_channel(principal="access-admin-5001") as admin_channel,
    ):
        call = evidence_pb2_grpc.EvidenceServiceStub(channel).UploadEvidence(requests())
        await asyncio.wait_for(sent.wait(), 10)
        await asyncio.sleep(0.5)  # the server is inside the call, waiting for chunks
        departure = apb.PersonnelEvent(
            event_id=str(uuid.uuid4()), type=apb.DEPARTED, user=f"users/{leaver}"
        )
        await access_pb2_grpc.AccessServiceStub(admin_channel).RecordPersonnelEvent(
            apb.RecordPersonnelEventRequest(event=departure)
        )
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(call, 10)
        elapsed = time.monotonic() - started
        never.set()
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert rich_error(ended.value).reason == "CREDENTIALS_REVOKED"
    assert elapsed < 5.0
