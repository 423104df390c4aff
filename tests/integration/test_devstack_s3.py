"""The embedded SeaweedFS S3 gateway: the object-lock guarantees evidence storage relies on.

Everything goes through the minio SDK, as the evidence service does.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import S3Error
from minio.objectlockconfig import DAYS, ObjectLockConfig
from minio.retention import Retention

from justice.devstack.seaweed import SeaweedS3


def _bucket(client: Minio, *, object_lock: bool = True) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    client.make_bucket(name, object_lock=object_lock)
    return name


def _put(client: Minio, bucket: str, key: str, data: bytes, **kwargs: object) -> str:
    result = client.put_object(bucket, key, io.BytesIO(data), len(data), **kwargs)  # type: ignore[arg-type]
    assert result.version_id, "object-lock buckets must be versioned"
    return result.version_id


def _in(days: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)


@pytest.fixture
def s3(s3_server: SeaweedS3) -> Minio:
    return s3_server.client()


def test_object_lock_bucket_is_versioned(s3: Minio) -> None:
    bucket = _bucket(s3)
    assert s3.get_bucket_versioning(bucket).status == "Enabled"
    v1 = _put(s3, bucket, "k", b"one")
    v2 = _put(s3, bucket, "k", b"two")
    assert v1 != v2
    assert s3.get_object(bucket, "k", version_id=v1).read() == b"one"


def test_compliance_retention_refuses_deleting_the_version(s3: Minio) -> None:
    bucket = _bucket(s3)
    until = _in(1)
    version = _put(s3, bucket, "report.xml", b"<signed/>", retention=Retention(COMPLIANCE, until))

    retention = s3.get_object_retention(bucket, "report.xml", version_id=version)
    assert retention is not None
    assert retention.mode == COMPLIANCE

    with pytest.raises(S3Error) as refused:
        s3.remove_object(bucket, "report.xml", version_id=version)
    assert refused.value.code == "AccessDenied"

    # Nor may the retention be shortened or switched to the bypassable mode.
    with pytest.raises(S3Error):
        s3.set_object_retention(
            bucket, "report.xml", Retention(COMPLIANCE, _in(0)), version_id=version
        )
    with pytest.raises(S3Error):
        s3.set_object_retention(
            bucket, "report.xml", Retention(GOVERNANCE, until), version_id=version
        )

    # A delete without a version id only adds a delete marker; the locked version stays readable.
    s3.remove_object(bucket, "report.xml")
    assert s3.get_object(bucket, "report.xml", version_id=version).read() == b"<signed/>"


def test_bucket_default_retention_applies_to_new_objects(s3: Minio) -> None:
    bucket = _bucket(s3)
    s3.set_object_lock_config(bucket, ObjectLockConfig(COMPLIANCE, 1, DAYS))
    version = _put(s3, bucket, "photo.jpg", b"jpeg")

    with pytest.raises(S3Error) as refused:
        s3.remove_object(bucket, "photo.jpg", version_id=version)
    assert refused.value.code == "AccessDenied"


def test_legal_hold_blocks_delete_until_released(s3: Minio) -> None:
    bucket = _bucket(s3)
    version = _put(s3, bucket, "video.mp4", b"frames")
    # SeaweedFS quirk: for a version that never had a hold it answers NoSuchObjectLegalHold,
    # not the NoSuchObjectLockConfiguration that minio-py maps to False, so the SDK raises.
    # Adapters must read that code as "no hold".
    with pytest.raises(S3Error) as never_held:
        s3.is_object_legal_hold_enabled(bucket, "video.mp4", version_id=version)
    assert never_held.value.code == "NoSuchObjectLegalHold"

    s3.enable_object_legal_hold(bucket, "video.mp4", version_id=version)
    assert s3.is_object_legal_hold_enabled(bucket, "video.mp4", version_id=version)
    with pytest.raises(S3Error) as refused:
        s3.remove_object(bucket, "video.mp4", version_id=version)
    assert refused.value.code == "AccessDenied"

    s3.disable_object_legal_hold(bucket, "video.mp4", version_id=version)
    assert not s3.is_object_legal_hold_enabled(bucket, "video.mp4", version_id=version)
    s3.remove_object(bucket, "video.mp4", version_id=version)
    with pytest.raises(S3Error):
        s3.stat_object(bucket, "video.mp4", version_id=version)


def test_presigned_get_works_then_expires(s3: Minio) -> None:
    bucket = _bucket(s3, object_lock=False)
    _put_plain(s3, bucket, "share.bin", b"evidence bytes")
    url = s3.presigned_get_object(bucket, "share.bin", expires=timedelta(seconds=2))

    assert _http_get(url) == (200, b"evidence bytes")

    time.sleep(3)
    assert _http_get(url)[0] == 403


def test_requests_without_the_right_key_are_refused(s3_server: SeaweedS3) -> None:
    wrong_secret = Minio(
        s3_server.endpoint, access_key=s3_server.access_key, secret_key="wrong", secure=False
    )
    with pytest.raises(S3Error) as bad_sig:
        wrong_secret.list_buckets()
    assert bad_sig.value.code == "SignatureDoesNotMatch"

    unknown_key = Minio(
        s3_server.endpoint, access_key="nobody", secret_key=s3_server.secret_key, secure=False
    )
    with pytest.raises(S3Error) as bad_key:
        unknown_key.list_buckets()
    assert bad_key.value.code == "InvalidAccessKeyId"

    bucket = _bucket(s3_server.client(), object_lock=False)
    _put_plain(s3_server.client(), bucket, "k", b"secret")
    for anonymous in (f"{s3_server.url}/", f"{s3_server.url}/{bucket}/k"):
        assert _http_get(anonymous)[0] == 403


def test_multipart_upload_of_20_mb(s3: Minio) -> None:
    bucket = _bucket(s3)
    data = os.urandom(20 * 1024 * 1024)
    s3.put_object(bucket, "big.bin", io.BytesIO(data), len(data), part_size=5 * 1024 * 1024)

    stat = s3.stat_object(bucket, "big.bin")
    assert stat.size == len(data)
    assert stat.etag is not None
    assert stat.etag.endswith("-4"), "expected a 4-part multipart ETag"
    body = s3.get_object(bucket, "big.bin").read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_data_survives_sigkill_restart_and_a_second_run(tmp_path: Path) -> None:
    data_dir = tmp_path / "s3"
    server = SeaweedS3(data_dir, access_key="devstack-test", secret_key="devstack-secret-1")
    try:
        server.start()
        server.wait_ready()
        client = server.client()
        bucket = _bucket(client)
        version = _put(client, bucket, "k", b"kept", retention=Retention(COMPLIANCE, _in(1)))

        port = server.port
        server.kill()
        assert not server.running
        server.restart()
        assert server.port == port
        assert client.get_object(bucket, "k", version_id=version).read() == b"kept"
    finally:
        server.stop()

    # A new instance on the same dir (new ports, new key) sees the same data and lock.
    second = SeaweedS3(data_dir, access_key="devstack-test-2", secret_key="devstack-secret-2")
    try:
        second.start()
        second.wait_ready()
        client = second.client()
        assert client.get_object(bucket, "k", version_id=version).read() == b"kept"
        with pytest.raises(S3Error):
            client.remove_object(bucket, "k", version_id=version)
        old_key = Minio(
            second.endpoint,
            access_key="devstack-test",
            secret_key="devstack-secret-1",
            secure=False,
        )
        with pytest.raises(S3Error):
            old_key.list_buckets()
    finally:
        second.stop()


def _http_get(url: str) -> tuple[int, bytes]:
    """Status and body of an unsigned GET, as a browser following a shared link would see it."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - http URLs of our own server
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()


def _put_plain(client: Minio, bucket: str, key: str, data: bytes) -> None:
    client.put_object(bucket, key, io.BytesIO(data), len(data))


def test_an_internal_port_taken_before_weed_binds_it_is_chosen_again(tmp_path: Path) -> None:
    s3 = SeaweedS3(tmp_path / "s3", access_key="port-test", secret_key="port-test-secret-key")
    taken = s3.internal_ports["filer.port"]
    # Someone else listens there first, as an outgoing connection or another test might.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        s3.start()
        try:
            s3.wait_ready(60)
            assert s3.internal_ports["filer.port"] != taken
            assert "Port allocation failed" in s3.log_tail(400)
            bucket = _bucket(s3.client(), object_lock=False)
            assert s3.client().bucket_exists(bucket)
        finally:
            s3.stop()
