"""Issue 14's six cases through the real gRPC server, on Ceph's radosgw 16.2, where they were
found: each answers its documented status and ErrorInfo reason, never INTERNAL.

The evidence service talks to radosgw through JUSTICE_EVIDENCE__S3_ENDPOINT given as a URL (case 5).
What S3 holds is read with boto3, not through the platform.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from justice.app import Application, build, server_settings
from justice.audit.alarms import PlatformAlarms
from justice.audit.store import AuditTransaction
from justice.audit.v1 import audit_pb2 as apb
from justice.audit.v1 import audit_pb2_grpc
from justice.devstack.ceph import CephRgw
from justice.devstack.pki import DevPki
from justice.evidence.api import EvidenceApi
from justice.evidence.compose import evidence_config
from justice.evidence.locking import BucketNotWriteOnce
from justice.evidence.model import content_key
from justice.evidence.service import EvidenceService
from justice.evidence.store import EvidenceTransaction
from justice.evidence.v1 import evidence_pb2 as pb
from justice.evidence.v1 import evidence_pb2_grpc
from justice.platform.blobs import S3Blobs
from justice.platform.config import Settings
from justice.platform.rpc import error_mapping
from justice.platform.server import BoundServer, Mount, ServerDeps, create_server, start
from justice.reports.v1 import reports_pb2 as rpb
from justice.reports.v1 import reports_pb2_grpc
from justice.security.identity import identity
from justice.security.rules import authorisation
from tests.api.conftest import ChannelFactory, client_credentials, with_evidence
from tests.api.evidence_client import PURPOSE, MiB, Stub, report_draft, upload
from tests.api.rich_status import rich_error
from tests.evidence_env import AnyCase, S3Target, http_get


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    # The cases are about S3; one database is enough.
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'justice.db'}"


@pytest.fixture(scope="module")
def settings(settings: Settings, rgw_server: CephRgw) -> Settings:
    return with_evidence(
        settings, rgw_server, {"s3_endpoint": rgw_server.url, "part_bytes": 5 * MiB}
    )


@pytest.fixture(scope="module")
def s3(rgw_server: CephRgw) -> Any:
    return S3Target(
        "radosgw", rgw_server.endpoint, rgw_server.access_key, rgw_server.secret_key
    ).boto3()


@pytest.fixture(scope="module")
async def stub(grpc_channel: grpc.aio.Channel, grpc_create_channel: ChannelFactory) -> Stub:
    reports = reports_pb2_grpc.ReportServiceStub(grpc_channel)
    # A draft that makes the case known to the platform.
    await reports.CreateReport(
        rpb.CreateReportRequest(report=report_draft([]), request_id=str(uuid.uuid4()))
    )
    return evidence_pb2_grpc.EvidenceServiceStub(grpc_channel)


async def _alerts(auditor: audit_pb2_grpc.AuditServiceStub, rule: str) -> list[apb.Alert]:
    found = await auditor.ListAlerts(apb.ListAlertsRequest(filter=f'rule = "{rule}"'))
    return list(found.alerts)


def _s3_retention(s3: Any, bucket: str, sha256: str, version: str | None = None) -> Any:
    key = content_key(sha256)
    version = version or s3.head_object(Bucket=bucket, Key=key)["VersionId"]
    return s3.get_object_retention(Bucket=bucket, Key=key, VersionId=version)["Retention"]


async def test_1_a_multipart_upload_is_locked_as_get_evidence_reports(
    stub: Stub, s3: Any, settings: Settings
) -> None:
    data = os.urandom(11 * MiB)
    evidence = await upload(stub, data, declared_sha256=hashlib.sha256(data).hexdigest())
    held = _s3_retention(s3, settings.evidence.bucket, evidence.sha256)
    got = await stub.GetEvidence(pb.GetEvidenceRequest(name=evidence.name), metadata=PURPOSE)
    assert pb.RetentionMode.Name(got.retention_mode) == held["Mode"] == "COMPLIANCE"
    assert got.retain_until.ToDatetime(tzinfo=UTC) == held["RetainUntilDate"]


@dataclass(frozen=True)
class Unlockable:
    server: BoundServer
    bucket: str


@pytest.fixture(scope="module")
async def unlockable(
    application: Application, settings: Settings, rgw_server: CephRgw, s3: Any
) -> AsyncIterator[Unlockable]:
    """An evidence server whose bucket is versioned but has no object lock: radosgw stores
    the bytes and will not lock them. Built as the composition root builds the real one,
    without the start-up check (which refuses this bucket: the point here is what happens
    to an upload when S3 does not keep the lock)."""
    suffix = uuid.uuid4().hex[:8]
    config = replace(
        evidence_config(settings.evidence),
        bucket=f"nolock-{suffix}",
        staging_bucket=f"nolock-st-{suffix}",
    )
    for bucket in (config.bucket, config.staging_bucket):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=config.bucket, VersioningConfiguration={"Status": "Enabled"})
    blobs = S3Blobs(rgw_server.url, rgw_server.access_key, rgw_server.secret_key)

    def clock() -> datetime:
        return datetime.now(UTC)

    service = EvidenceService(
        uow=lambda: EvidenceTransaction(application.database.sessions),
        blobs=blobs,
        cases=AnyCase(),
        clock=clock,
        config=config,
        alarm=PlatformAlarms(lambda: AuditTransaction(application.database.sessions), clock),
    )
    api = EvidenceApi(service)
    server = create_server(
        server_settings(settings),
        ServerDeps(
            mounts=[
                Mount(
                    pb.DESCRIPTOR.services_by_name["EvidenceService"].full_name,
                    lambda s: evidence_pb2_grpc.add_EvidenceServiceServicer_to_server(api, s),
                )
            ],
            around=[error_mapping(), identity(application.directory, clock), authorisation()],
        ),
    )
    await start(server)
    yield Unlockable(server, config.bucket)
    await server.server.stop(None)
    blobs.close()


async def test_1_an_upload_s3_will_not_lock_is_refused_with_an_alert_and_not_recorded(
    unlockable: Unlockable,
    application: Application,
    pki: DevPki,
    auditor: audit_pb2_grpc.AuditServiceStub,
    s3: Any,
) -> None:
    channel = grpc.aio.secure_channel(
        f"localhost:{unlockable.server.port}", client_credentials(pki, "officer-1001")
    )
    data = os.urandom(6 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await upload(evidence_pb2_grpc.EvidenceServiceStub(channel), data)
    finally:
        await channel.close()
    details = rich_error(refused.value)
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "OBJECT_LOCK_NOT_HELD"
    assert [a for a in await _alerts(auditor, "EVIDENCE_LOCK_NOT_HELD") if sha in a.summary]
    # Nothing recorded as locked, and no unlocked copy left at the content address.
    assert await count(application, "SELECT count(*) FROM evidence WHERE sha256 = :s", s=sha) == 0
    listing = s3.list_object_versions(Bucket=unlockable.bucket, Prefix=content_key(sha))
    assert listing.get("Versions", []) == []


async def test_2_a_second_upload_reads_radosgw_nanosecond_retention(
    stub: Stub, s3: Any, settings: Settings
) -> None:
    """radosgw writes RetainUntilDate with 9 fractional digits (minio-py issue 1473)."""
    data = os.urandom(3000)
    sha = hashlib.sha256(data).hexdigest()
    first = await upload(stub, data, declared_sha256=sha)
    again = await upload(stub, data, declared_sha256=sha, category="serious-crime")
    held = _s3_retention(s3, settings.evidence.bucket, sha)
    assert again.retain_until.ToDatetime(tzinfo=UTC) == held["RetainUntilDate"]
    assert again.retain_until.ToDatetime() > first.retain_until.ToDatetime()
    # The first record now reports the longer lock S3 holds, too.
    got = await stub.GetEvidence(pb.GetEvidenceRequest(name=first.name), metadata=PURPOSE)
    assert got.retain_until == again.retain_until


async def test_3_an_undeclared_upload_pins_the_version_radosgw_does_not_name(
    stub: Stub, s3: Any, settings: Settings, application: Application
) -> None:
    """radosgw's CopyObject answer carries no x-amz-version-id."""
    data = os.urandom(2 * MiB)
    evidence = await upload(stub, data)
    key = content_key(evidence.sha256)
    [version] = [
        v["VersionId"]
        for v in s3.list_object_versions(Bucket=settings.evidence.bucket, Prefix=key)["Versions"]
    ]
    recorded = await count(
        application, "SELECT count(*) FROM evidence WHERE version_id = :v", v=version
    )
    assert recorded == 1
    shared = await stub.ShareEvidence(
        pb.ShareEvidenceRequest(name=evidence.name, partner="prosecutor-antwerp", purpose="case"),
        metadata=PURPOSE,
    )
    assert f"versionId={version}" in shared.url
    assert http_get(shared.url) == (200, data)
    # A record made before this fix, without its version, is never shared unpinned.
    async with application.database.engine.begin() as connection:
        await connection.execute(
            text("UPDATE evidence SET version_id = '' WHERE evidence_id = :id"),
            {"id": evidence.name.removeprefix("evidence/")},
        )
    with pytest.raises(grpc.aio.AioRpcError) as unpinned:
        await stub.ShareEvidence(
            pb.ShareEvidenceRequest(name=evidence.name, partner="prosecutor-antwerp", purpose="x"),
            metadata=PURPOSE,
        )
    details = rich_error(unpinned.value)
    assert (details.code, details.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "EVIDENCE_VERSION_UNKNOWN",
    )


async def test_4_a_missing_version_is_data_loss_with_an_alert(
    stub: Stub, s3: Any, settings: Settings, auditor: audit_pb2_grpc.AuditServiceStub
) -> None:
    # GOVERNANCE: the test, as the bucket's owner, can remove the version behind our back.
    data = os.urandom(4000)
    evidence = await upload(stub, data, category="traffic")
    key = content_key(evidence.sha256)
    version = s3.head_object(Bucket=settings.evidence.bucket, Key=key)["VersionId"]
    s3.delete_object(
        Bucket=settings.evidence.bucket, Key=key, VersionId=version, BypassGovernanceRetention=True
    )
    download = stub.DownloadEvidence(
        pb.DownloadEvidenceRequest(name=evidence.name), metadata=PURPOSE
    )
    with pytest.raises(grpc.aio.AioRpcError) as lost:
        async for _ in download:
            pass
    details = rich_error(lost.value)
    assert details.code == grpc.StatusCode.DATA_LOSS
    assert details.reason == "EVIDENCE_OBJECT_MISSING"
    missing = await _alerts(auditor, "EVIDENCE_OBJECT_MISSING")
    assert [a for a in missing if key in a.summary]
    # An evidence name nobody recorded stays NOT_FOUND.
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        async for _ in stub.DownloadEvidence(
            pb.DownloadEvidenceRequest(name="evidence/nothing-here"), metadata=PURPOSE
        ):
            pass
    assert rich_error(unknown.value).reason == "EVIDENCE_NOT_FOUND"


async def test_5_the_s3_endpoint_may_be_a_url(application: Application, settings: Settings) -> None:
    assert settings.evidence.s3_endpoint.startswith("http://")
    assert application.evidence is not None


async def test_6_releasing_a_hold_never_set_is_no_hold_not_an_error(
    stub: Stub, grpc_create_channel: ChannelFactory, s3: Any, settings: Settings
) -> None:
    """radosgw answers ObjectLockConfigurationNotFoundError for a version without a hold."""
    evidence = await upload(stub, os.urandom(1500))
    await stub.ShareEvidence(
        pb.ShareEvidenceRequest(name=evidence.name, partner="prosecutor-antwerp", purpose="case"),
        metadata=PURPOSE,
    )
    prosecutor = grpc_create_channel(principal="prosecutor-antwerp")
    supervisor = grpc_create_channel(principal="custody-supervisor-2101")
    try:
        released = await evidence_pb2_grpc.EvidenceServiceStub(prosecutor).ReleaseLegalHold(
            pb.ReleaseLegalHoldRequest(name=evidence.name)
        )
        assert not released.legal_hold
        held = await evidence_pb2_grpc.EvidenceServiceStub(supervisor).SetLegalHold(
            pb.SetLegalHoldRequest(name=evidence.name)
        )
        assert held.legal_hold
        key = content_key(evidence.sha256)
        answer = s3.get_object_legal_hold(Bucket=settings.evidence.bucket, Key=key)
        assert answer["LegalHold"]["Status"] == "ON"
    finally:
        await prosecutor.close()
        await supervisor.close()


async def count(app: Application, sql: str, **params: object) -> int:
    async with app.database.engine.connect() as connection:
        return int((await connection.execute(text(sql), params)).scalar_one())


async def test_the_service_does_not_start_on_a_bucket_without_object_lock(
    settings: Settings, s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = f"plain-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(BucketNotWriteOnce) as refused:
        await build(settings.updated(evidence={"bucket": bucket}))
    assert refused.value.metadata == {"bucket": bucket, "property": "object_lock"}
    [line] = [r.getMessage() for r in caplog.records if "evidence service not started" in r.message]
    assert bucket in line
    assert "object_lock" in line
