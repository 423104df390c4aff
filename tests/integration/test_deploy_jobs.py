"""The chart's hook Jobs: `justice migrate` and `justice bootstrap-storage` run on their own
and leave the schema and the evidence buckets as the embedded default would."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import create_engine, inspect

from justice.devstack.seaweed import SeaweedS3
from tests.cli_process import run_cli


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JUSTICE_")}
    return {**clean, "JUSTICE_STATE_DIR": str(tmp_path), **values}


def test_migrate_creates_every_table_and_runs_twice(tmp_path: Path) -> None:
    database = tmp_path / "justice.db"
    env = _env(tmp_path, JUSTICE_DATABASE_URL=f"sqlite+aiosqlite:///{database}")
    for _ in range(2):  # a second run (an upgrade with nothing new) is a no-op
        result = run_cli(env, "migrate")
        assert result.returncode == 0, result.stdout + result.stderr
    tables = set(inspect(create_engine(f"sqlite:///{database}")).get_table_names())
    assert {
        "report_version",
        "evidence",
        "exchange_outbox",
        "audit_record",
        "access_grant",
    } <= tables


def test_bootstrap_storage_creates_a_locked_bucket(s3_server: SeaweedS3, tmp_path: Path) -> None:
    bucket = f"boot-{uuid.uuid4().hex[:10]}"
    env = _env(
        tmp_path,
        JUSTICE_EVIDENCE__S3_ENDPOINT=s3_server.endpoint,
        JUSTICE_EVIDENCE__S3_ACCESS_KEY=s3_server.access_key,
        JUSTICE_EVIDENCE__S3_SECRET_KEY=s3_server.secret_key,
        JUSTICE_EVIDENCE__BUCKET=bucket,
        JUSTICE_EVIDENCE__STAGING_BUCKET=f"{bucket}-staging",
    )
    result = run_cli(env, "bootstrap-storage")
    assert result.returncode == 0, result.stdout + result.stderr
    client = s3_server.client()
    assert client.bucket_exists(f"{bucket}-staging")
    assert client.get_object_lock_config(bucket) is not None
    assert client.get_bucket_versioning(bucket).status == "Enabled"


def test_bootstrap_storage_without_s3_names_the_setting(tmp_path: Path) -> None:
    result = run_cli(_env(tmp_path), "bootstrap-storage")
    assert result.returncode == 2
    assert "JUSTICE_EVIDENCE__S3_ENDPOINT" in result.stdout
