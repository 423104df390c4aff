"""An upload outlives the server: stopped mid-upload and started again (a new process's
state: nothing pinned in memory), the client resumes at the committed offset and the file
is hashed back from storage."""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import UTC, datetime

import grpc
import pytest

from justice.app import Application, build
from justice.devstack.pki import DevPki
from justice.devstack.seaweed import SeaweedS3
from justice.evidence.model import content_key
from justice.evidence.v1 import evidence_pb2 as pb
from justice.evidence.v1 import evidence_pb2_grpc
from justice.platform.config import Settings
from justice.platform.server import start
from justice.reports.v1 import reports_pb2 as rpb
from justice.reports.v1 import reports_pb2_grpc
from tests.api.conftest import client_credentials, with_evidence
from tests.api.evidence_client import MiB, meta, report_draft, requests
from tests.api.rich_status import rich_error


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'justice.db'}"


async def _serving(settings: Settings) -> Application:
    application = await build(settings, clock=lambda: datetime.now(UTC))
    await start(application.server)
    return application


async def _stopped(application: Application) -> None:
    await application.server.server.stop(None)
    await application.close()


def _channel(application: Application, pki: DevPki) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(
        f"localhost:{application.server.port}", client_credentials(pki, "officer-1001")
    )


@pytest.mark.parametrize("declare_sha256", [False, True], ids=["staged", "declared"])
async def test_an_upload_resumes_after_the_server_restarts(
    settings: Settings, s3_server: SeaweedS3, pki: DevPki, declare_sha256: bool
) -> None:
    settings = with_evidence(
        settings, s3_server, {"part_bytes": 5 * MiB, "max_upload_bytes": 300 * MiB}
    )
    data = os.urandom(12 * MiB + 5)
    sha = hashlib.sha256(data).hexdigest()
    m = meta(declared_size=len(data), declared_sha256=sha if declare_sha256 else "")
    name = f"uploads/{m.request_id}"

    before = await _serving(settings)
    channel = _channel(before, pki)
    try:
        await reports_pb2_grpc.ReportServiceStub(channel).CreateReport(
            rpb.CreateReportRequest(report=report_draft([]), request_id=str(uuid.uuid4()))
        )
        stub = evidence_pb2_grpc.EvidenceServiceStub(channel)
        first = pb.UploadEvidenceRequest(metadata=m)
        # The stream ends short of the declared size, as a cut connection ends it.
        with pytest.raises(grpc.aio.AioRpcError) as short:
            await stub.UploadEvidence(requests(first, data[: 7 * MiB]))
        details = rich_error(short.value)
        assert details.reason == "UPLOAD_INCOMPLETE"
        offset = int(details.metadata["committed_offset"])
        assert offset == 5 * MiB
    finally:
        await channel.close()
        await _stopped(before)

    after = await _serving(settings)
    channel = _channel(after, pki)
    try:
        stub = evidence_pb2_grpc.EvidenceServiceStub(channel)
        resume = pb.UploadEvidenceRequest(resume=pb.ResumeUpload(upload=name, offset=offset))
        evidence = await stub.UploadEvidence(requests(resume, data[offset:]))
    finally:
        await channel.close()
        await _stopped(after)
    assert evidence.sha256 == sha
    assert evidence.size_bytes == len(data)
    stored = s3_server.client().get_object(settings.evidence.bucket, content_key(sha))
    assert hashlib.sha256(stored.read()).hexdigest() == sha
