"""Evidence store conformance, on more than one S3 implementation.

The evidence service runs on its real adapters against SeaweedFS and against Ceph's
radosgw 16.2 (started on loopback by the rgw_server fixture; in CI it must start). Every
promise is checked through S3 itself, with boto3, not through the platform's records:
retention per category in the right mode, refusal of deletes by version id, legal holds,
delete markers, version-pinned shares that expire, duplicates that only lengthen the lock,
and the start-up check. A bucket that does not keep locks is refused, never recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from justice.evidence.locking import check_write_once
from justice.evidence.model import (
    Evidence,
    Integrity,
    RetentionMode,
    content_key,
)
from justice.evidence.service import EvidenceService
from justice.platform.blobs import S3Blobs
from justice.platform.db import Database
from justice.platform.errors import DataLoss, FailedPrecondition
from tests.evidence_env import (
    Clock,
    MiB,
    S3Target,
    chunks,
    evidence_service,
    http_get,
    metadata,
    rows,
)

# Category -> (mode, days), as Settings.evidence.retention has them by default.
CATEGORIES = {
    "standard": (RetentionMode.COMPLIANCE, 10 * 365),
    "serious-crime": (RetentionMode.COMPLIANCE, 30 * 365),
    "traffic": (RetentionMode.GOVERNANCE, 2 * 365),
}


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    # The conformance is about S3; one database is enough.
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'justice.db'}"


@pytest.fixture(scope="module", params=["seaweedfs", "radosgw"])
def target(request: pytest.FixtureRequest) -> S3Target:
    server = request.getfixturevalue("s3_server" if request.param == "seaweedfs" else "rgw_server")
    return S3Target(request.param, server.endpoint, server.access_key, server.secret_key)


@pytest.fixture(scope="module")
def blobs(target: S3Target) -> Iterator[S3Blobs]:
    # A URL, as JUSTICE_EVIDENCE__S3_ENDPOINT may now be given.
    store = S3Blobs(f"http://{target.endpoint}", target.access_key, target.secret_key)
    yield store
    store.close()


@dataclass
class Env:
    service: EvidenceService
    s3: Any  # boto3's S3 client
    bucket: str
    clock: Clock


@pytest.fixture(scope="module")
async def env(database: Database, blobs: S3Blobs, target: S3Target) -> Env:
    clock = Clock()
    service = evidence_service(database, blobs, clock, uuid.uuid4().hex[:8], alarms=True)
    await blobs.ensure_bucket(service.config.bucket, object_lock=True)
    await blobs.ensure_bucket(service.config.staging_bucket, object_lock=False)
    await check_write_once(blobs, service.config.bucket)
    return Env(service, target.boto3(), service.config.bucket, clock)


async def _upload(env: Env, data: bytes, *, declare: bool = True, **meta: object) -> Evidence:
    if declare:
        meta["declared_sha256"] = hashlib.sha256(data).hexdigest()
    return await env.service.upload("officer-1", metadata(**meta), chunks(data), unit="unit-1")


def _s3_retention(env: Env, evidence: Evidence) -> tuple[str, Any]:
    found = env.s3.get_object_retention(
        Bucket=env.bucket, Key=evidence.key, VersionId=evidence.version_id
    )["Retention"]
    return found["Mode"], found["RetainUntilDate"]


def _versions(env: Env, key: str) -> tuple[list[str], list[str]]:
    listing = env.s3.list_object_versions(Bucket=env.bucket, Prefix=key)
    versions = [v["VersionId"] for v in listing.get("Versions", []) if v["Key"] == key]
    markers = [m["VersionId"] for m in listing.get("DeleteMarkers", []) if m["Key"] == key]
    return versions, markers


async def test_start_up_check_accepts_a_write_once_bucket_and_names_what_fails(
    env: Env, blobs: S3Blobs
) -> None:
    suffix = uuid.uuid4().hex[:8]
    plain = f"plain-{suffix}"
    await blobs.ensure_bucket(plain, object_lock=False)
    with pytest.raises(FailedPrecondition) as unversioned:
        await check_write_once(blobs, plain)
    assert unversioned.value.reason == "EVIDENCE_BUCKET_NOT_WRITE_ONCE"
    assert unversioned.value.metadata == {"bucket": plain, "property": "versioning"}
    assert plain in unversioned.value.message

    env.s3.put_bucket_versioning(Bucket=plain, VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(FailedPrecondition) as unlocked:
        await check_write_once(blobs, plain)
    assert unlocked.value.metadata == {"bucket": plain, "property": "object_lock"}
    # The probe of the accepted bucket left nothing behind.
    versions, markers = _versions(env, "write-once-probe/")
    assert (versions, markers) == ([], [])


@pytest.mark.parametrize(
    ("category", "size", "declare"),
    [
        ("standard", 1000, True),  # one part, at its content address from the start
        ("serious-crime", 11 * MiB + 7, True),  # three parts: the multipart path
        ("traffic", 6 * MiB, False),  # staged, then CopyObject to its content address
    ],
)
async def test_each_version_carries_its_category_retention_as_s3_holds_it(
    env: Env, blobs: S3Blobs, category: str, size: int, declare: bool
) -> None:
    data = os.urandom(size)
    evidence = await _upload(env, data, declare=declare, category=category)
    assert evidence.version_id
    versions, _ = _versions(env, evidence.key)
    assert versions == [evidence.version_id]
    mode, until = _s3_retention(env, evidence)
    wanted_mode, days = CATEGORIES[category]
    assert mode == wanted_mode.value
    assert until >= env.clock.now.replace(microsecond=0) + timedelta(days=days)
    # What the platform reports is exactly what S3 holds (issue 8, point 7).
    stored = await env.service.get(evidence.name)
    assert stored.retention.mode.value == mode
    assert stored.retention.until == until
    # A version that never had a hold reads as "no hold" (radosgw answers with an error).
    assert await blobs.legal_hold(env.bucket, evidence.key, evidence.version_id) is False


async def test_a_delete_with_the_version_id_is_refused(env: Env) -> None:
    data = os.urandom(2000)
    evidence = await _upload(env, data)
    with pytest.raises(ClientError) as refused:
        env.s3.delete_object(Bucket=env.bucket, Key=evidence.key, VersionId=evidence.version_id)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    body = env.s3.get_object(Bucket=env.bucket, Key=evidence.key, VersionId=evidence.version_id)
    assert body["Body"].read() == data


async def test_a_legal_hold_blocks_deletion_until_released(env: Env, database: Database) -> None:
    # GOVERNANCE, so that once the hold is gone a bypassing delete can go through.
    evidence = await _upload(env, os.urandom(3000), category="traffic")
    held = await env.service.set_legal_hold(evidence.name)
    assert held.legal_hold
    hold = env.s3.get_object_legal_hold(
        Bucket=env.bucket, Key=evidence.key, VersionId=evidence.version_id
    )
    assert hold["LegalHold"]["Status"] == "ON"
    with pytest.raises(ClientError) as refused:
        env.s3.delete_object(
            Bucket=env.bucket,
            Key=evidence.key,
            VersionId=evidence.version_id,
            BypassGovernanceRetention=True,
        )
    assert refused.value.response["Error"]["Code"] == "AccessDenied"

    await env.service.release_legal_hold(evidence.name)
    env.s3.delete_object(
        Bucket=env.bucket,
        Key=evidence.key,
        VersionId=evidence.version_id,
        BypassGovernanceRetention=True,
    )
    assert _versions(env, evidence.key)[0] == []
    # The record says the version must exist: DATA_LOSS and an alert, never INTERNAL.
    with pytest.raises(DataLoss) as lost:
        await env.service.download(evidence.name, 0, 0)
    assert lost.value.reason == "EVIDENCE_OBJECT_MISSING"
    where = "WHERE rule = :rule AND summary LIKE :key"
    assert (
        await rows(
            database, "audit_alert", where, rule="EVIDENCE_OBJECT_MISSING", key=f"%{evidence.key}%"
        )
        == 1
    )


async def test_a_versionless_delete_only_adds_a_delete_marker(env: Env) -> None:
    data = os.urandom(4000)
    evidence = await _upload(env, data)
    answer = env.s3.delete_object(Bucket=env.bucket, Key=evidence.key)
    assert answer.get("DeleteMarker") is True
    versions, markers = _versions(env, evidence.key)
    assert versions == [evidence.version_id]
    assert len(markers) == 1
    verification = await env.service.verify(evidence.name)
    assert verification.integrity is Integrity.INTACT
    download = await env.service.download(evidence.name, 0, 0)
    assert b"".join([c async for c in download.chunks]) == data


async def test_a_share_pins_the_version_and_expires(env: Env) -> None:
    data = os.urandom(5000)
    evidence = await _upload(env, data)
    link = await env.service.share(
        "officer-1", evidence.name, "prosecutor-antwerp", timedelta(seconds=2), "case file"
    )
    assert f"versionId={evidence.version_id}" in link.url
    # A newer version at the same key does not change what the link serves.
    env.s3.put_object(Bucket=env.bucket, Key=evidence.key, Body=b"forged")
    assert http_get(link.url) == (200, data)
    await asyncio.sleep(3)
    status, _ = http_get(link.url)
    assert status == 403


async def test_duplicates_lengthen_the_lock_and_never_shorten_it(env: Env) -> None:
    data = os.urandom(6000)
    long = await _upload(env, data, category="serious-crime")
    short = await _upload(env, data, category="standard")
    assert short.version_id == long.version_id
    assert _s3_retention(env, short) == ("COMPLIANCE", long.retention.until)
    assert short.retention == long.retention

    other = os.urandom(6000)
    governance = await _upload(env, other, category="traffic", declare=False)
    env.clock.now += timedelta(seconds=5)
    compliance = await _upload(env, other, category="standard")
    mode, until = _s3_retention(env, compliance)
    assert mode == "COMPLIANCE"
    assert until >= governance.retention.until
    # Every record of the object reports the lock S3 now holds.
    for record in (governance, compliance):
        stored = await env.service.get(record.name)
        assert (stored.retention.mode.value, stored.retention.until) == (mode, until)


async def test_lock_headers_on_a_multipart_start_are_not_relied_on(
    env: Env, target: S3Target
) -> None:
    """What makes the read-back necessary: radosgw 16.2 ignores the lock headers of
    CreateMultipartUpload (Ceph tracker 63724). The platform's own multipart uploads on the
    same server are locked (test above); a bare one here shows the server's behaviour."""
    key = f"bare/{uuid.uuid4().hex}"
    until = env.clock.now + timedelta(days=1)
    started = env.s3.create_multipart_upload(
        Bucket=env.bucket, Key=key, ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until
    )
    part = env.s3.upload_part(
        Bucket=env.bucket, Key=key, UploadId=started["UploadId"], PartNumber=1, Body=b"x"
    )
    done = env.s3.complete_multipart_upload(
        Bucket=env.bucket,
        Key=key,
        UploadId=started["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    version = done.get("VersionId") or env.s3.head_object(Bucket=env.bucket, Key=key)["VersionId"]
    try:
        env.s3.get_object_retention(Bucket=env.bucket, Key=key, VersionId=version)
        kept = True
    except ClientError:
        kept = False
    if target.name == "radosgw":
        assert not kept


async def _upload_into(
    service: EvidenceService, database: Database, s3: Any, data: bytes
) -> FailedPrecondition:
    """Upload `data`; return the refusal after checking that nothing was recorded or left."""
    meta = metadata(declared_sha256=hashlib.sha256(data).hexdigest())
    records = await rows(database, "evidence")
    with pytest.raises(FailedPrecondition) as refused:
        await service.upload("officer-1", meta, chunks(data), unit="unit-1")
    assert await rows(database, "evidence") == records
    assert await rows(database, "evidence_upload", "WHERE upload_id = :id", id=meta.request_id) == 0
    # The unlocked bytes are not left behind for a later upload to take as locked.
    key = content_key(meta.declared_sha256)
    listing = s3.list_object_versions(Bucket=service.config.bucket, Prefix=key)
    assert [v for v in listing.get("Versions", []) if v["Key"] == key] == []
    return refused.value


async def test_an_unversioned_bucket_is_refused_and_nothing_is_recorded(
    database: Database, blobs: S3Blobs, target: S3Target
) -> None:
    service = evidence_service(database, blobs, Clock(), uuid.uuid4().hex[:8], alarms=True)
    await blobs.ensure_bucket(service.config.bucket, object_lock=False)
    await blobs.ensure_bucket(service.config.staging_bucket, object_lock=False)
    refused = await _upload_into(service, database, target.boto3(), os.urandom(6 * MiB))
    assert refused.reason in ("OBJECT_VERSION_UNKNOWN", "OBJECT_LOCK_NOT_HELD")
    where = "WHERE rule = :rule AND summary LIKE :bucket"
    bucket = f"%{service.config.bucket}%"
    assert await rows(database, "audit_alert", where, rule="EVIDENCE_LOCK_NOT_HELD", bucket=bucket)


async def test_a_bucket_without_object_lock_never_holds_evidence(
    database: Database, blobs: S3Blobs, target: S3Target
) -> None:
    """A versioned bucket made without object lock: the start-up check refuses it on every
    server. Past that check, the servers differ: radosgw refuses the retention, so the
    read-back finds none and the upload is refused (OBJECT_LOCK_NOT_HELD, an alert);
    SeaweedFS sets and reports a retention there and does not enforce it, which no
    read-back can see: the start-up check is what keeps evidence out of such a bucket."""
    service = evidence_service(database, blobs, Clock(), uuid.uuid4().hex[:8], alarms=True)
    bucket = service.config.bucket
    await blobs.ensure_bucket(bucket, object_lock=False)
    await blobs.ensure_bucket(service.config.staging_bucket, object_lock=False)
    s3 = target.boto3()
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(FailedPrecondition) as not_started:
        await check_write_once(blobs, bucket)
    assert not_started.value.metadata == {"bucket": bucket, "property": "object_lock"}

    if target.name == "seaweedfs":
        version = s3.put_object(Bucket=bucket, Key="unenforced", Body=b"x")["VersionId"]
        until = datetime.now(UTC) + timedelta(days=1)
        s3.put_object_retention(
            Bucket=bucket,
            Key="unenforced",
            VersionId=version,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until},
        )
        held = s3.get_object_retention(Bucket=bucket, Key="unenforced", VersionId=version)
        assert held["Retention"]["Mode"] == "COMPLIANCE"
        s3.delete_object(Bucket=bucket, Key="unenforced", VersionId=version)  # not refused
        return
    refused = await _upload_into(service, database, s3, os.urandom(7 * MiB))
    assert refused.reason == "OBJECT_LOCK_NOT_HELD"
    where = "WHERE rule = :rule AND summary LIKE :bucket"
    assert (
        await rows(
            database, "audit_alert", where, rule="EVIDENCE_LOCK_NOT_HELD", bucket=f"%{bucket}%"
        )
        == 1
    )
