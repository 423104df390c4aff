"""Every read of personal data on the real server (evidence included) refuses a caller who
declares no purpose, and the refusal is audited; other calls do not ask for one."""

from __future__ import annotations

import grpc
import pytest

from justice.audit.personal_data import PERSONAL_DATA_READS
from justice.audit.v1 import audit_pb2 as apb
from justice.audit.v1 import audit_pb2_grpc
from justice.devstack.seaweed import SeaweedS3
from justice.platform.config import Settings
from justice.security.principal import Role
from tests.api.conftest import ChannelFactory, Enrol, with_evidence
from tests.api.rich_status import rich_error

PURPOSE = (("x-justice-purpose", "purpose gate test"),)
# Server-streaming among the reads; all the others are unary.
_STREAMING = {"/justice.evidence.v1.EvidenceService/DownloadEvidence"}


def _raw(data: bytes) -> bytes:
    return data


@pytest.fixture(scope="module", params=["sqlite"])
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    # The gate is the same on every database.
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'justice.db'}"


@pytest.fixture(scope="module")
def settings(settings: Settings, s3_server: SeaweedS3) -> Settings:
    return with_evidence(settings, s3_server)


async def _call(
    channel: grpc.aio.Channel, method: str, metadata: tuple[tuple[str, str], ...]
) -> None:
    if method in _STREAMING:
        async for _ in channel.unary_stream(method, _raw, _raw)(b"", metadata=metadata):
            pass
    else:
        await channel.unary_unary(method, _raw, _raw)(b"", metadata=metadata)


async def test_each_personal_data_read_needs_a_purpose_and_the_refusal_is_audited(
    grpc_create_channel: ChannelFactory, enrol: Enrol
) -> None:
    user = await enrol("purpose-9001", frozenset(Role))  # allowed by role everywhere
    refused, passed = [], []
    async with grpc_create_channel(principal=user) as channel:
        for method in sorted(PERSONAL_DATA_READS):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _call(channel, method, ())
            error = rich_error(caught.value)
            refused.append((method, error.code, error.reason))
            # With a purpose the same call gets past the gate (to its own checks).
            try:
                await _call(channel, method, PURPOSE)
            except grpc.aio.AioRpcError as later:
                passed.append((method, rich_error(later).reason))
    assert not [(m, reason) for m, reason in passed if reason == "PURPOSE_REQUIRED"]
    assert refused == [
        (m, grpc.StatusCode.FAILED_PRECONDITION, "PURPOSE_REQUIRED")
        for m in sorted(PERSONAL_DATA_READS)
    ]

    async with grpc_create_channel(principal="auditor-4001") as channel:
        audit = audit_pb2_grpc.AuditServiceStub(channel)
        seen = await audit.QueryAccess(
            apb.QueryAccessRequest(principal=user, page_size=100), metadata=PURPOSE
        )
    gated = {
        f"/{r.service}/{r.method}"
        for r in seen.records
        if (r.outcome, r.reason, r.purpose) == ("FAILED_PRECONDITION", "PURPOSE_REQUIRED", "")
    }
    assert gated == PERSONAL_DATA_READS


async def test_other_calls_need_no_purpose(
    grpc_create_channel: ChannelFactory, enrol: Enrol
) -> None:
    user = await enrol("purpose-9002", frozenset(Role))
    async with grpc_create_channel(principal=user) as channel:
        for method in (
            "/justice.evidence.v1.EvidenceService/VerifyEvidence",
            "/justice.reports.v1.ReportService/VerifyReport",
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _call(channel, method, ())
            assert rich_error(caught.value).reason != "PURPOSE_REQUIRED", method
