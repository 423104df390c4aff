"""Builders for the evidence service on its real adapters (S3Blobs, tables in a Database),
without gRPC: the integration tests' way in."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.config import Config
from sqlalchemy import text

from justice.audit.alarms import PlatformAlarms
from justice.audit.store import AuditTransaction
from justice.evidence.compose import evidence_config
from justice.evidence.model import Metadata
from justice.evidence.service import EvidenceService
from justice.evidence.store import EvidenceTransaction
from justice.platform.blobs import S3Blobs
from justice.platform.config import EvidenceSettings
from justice.platform.db import Database

MiB = 1024 * 1024


class AnyCase:
    async def case_known(self, case_number: str) -> bool:
        return True

    async def report_case(self, report: str) -> str | None:
        return None

    async def report_recipient(self, report: str) -> str | None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class S3Target:
    """One S3 implementation under test, as the platform's settings would name it."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str

    def boto3(self) -> object:
        """An independent S3 client (not the SDK the platform uses)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=f"http://{self.endpoint}",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )


def evidence_service(
    database: Database,
    blobs: S3Blobs,
    clock: Clock,
    suffix: str,
    *,
    alarms: bool = False,
    **overrides: object,
) -> EvidenceService:
    """A service on buckets of its own (evi-<suffix>), alerts stored in `database` if asked."""
    settings = EvidenceSettings(
        bucket=f"evi-{suffix}",
        staging_bucket=f"evi-stage-{suffix}",
        part_bytes=5 * MiB,
        # Small enough that 10,000 parts of 5 MiB cover it (larger maxima grow the part).
        max_upload_bytes=1024 * MiB,
        **overrides,  # type: ignore[arg-type]
    )
    return EvidenceService(
        uow=lambda: EvidenceTransaction(database.sessions),
        blobs=blobs,
        cases=AnyCase(),
        clock=clock,
        config=evidence_config(settings),
        alarm=PlatformAlarms(lambda: AuditTransaction(database.sessions), clock)
        if alarms
        else None,
    )


def metadata(**overrides: object) -> Metadata:
    values: dict[str, object] = {
        "case_number": "AN.1/26",
        "media_type": "audio/ogg",
        "original_filename": "interview.ogg",
        "request_id": uuid.uuid4().hex,
    }
    values.update(overrides)
    return Metadata(**values)  # type: ignore[arg-type]


async def chunks(data: bytes, size: int = MiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def rows(database: Database, table: str, where: str = "", **params: object) -> int:
    async with database.engine.connect() as connection:
        query = text(f"SELECT count(*) FROM {table} {where}")  # noqa: S608 - our own tables
        return int((await connection.execute(query, params)).scalar_one())


def http_get(url: str) -> tuple[int, bytes]:
    """A plain HTTP GET, as a partner fetches a share link: status and body."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our own S3 server
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()
