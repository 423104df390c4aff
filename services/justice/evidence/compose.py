"""The evidence domain assembled from the platform's parts: its service on the configured
object storage (buckets made sure of), its gRPC mount, and its maintenance task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from justice.evidence.api import EvidenceApi
from justice.evidence.locking import BucketNotWriteOnce, check_write_once
from justice.evidence.model import EvidenceConfig, RetentionMode, RetentionRule
from justice.evidence.ports import Alarm, CaseDirectory
from justice.evidence.service import EvidenceService
from justice.evidence.store import EvidenceTransaction
from justice.evidence.v1 import evidence_pb2, evidence_pb2_grpc
from justice.platform.blobs import S3Blobs
from justice.platform.config import EvidenceSettings
from justice.platform.db import Database
from justice.platform.server import Mount

log = logging.getLogger(__name__)


def evidence_config(settings: EvidenceSettings) -> EvidenceConfig:
    return EvidenceConfig(
        bucket=settings.bucket,
        staging_bucket=settings.staging_bucket,
        retention={
            name: RetentionRule(RetentionMode(rule.mode), timedelta(days=rule.days))
            for name, rule in settings.retention.items()
        },
        default_category=settings.default_category,
        share_default=timedelta(seconds=settings.share_default_seconds),
        share_max=timedelta(seconds=settings.share_max_seconds),
        max_upload_bytes=settings.max_upload_bytes,
        max_chunk_bytes=settings.max_chunk_bytes,
        part_bytes=settings.part_bytes,
        parts_in_flight=settings.parts_in_flight,
        upload_ttl=timedelta(seconds=settings.upload_ttl_seconds),
        sign_rehash_max_bytes=settings.sign_rehash_max_bytes,
    )


@dataclass
class EvidenceComponent:
    service: EvidenceService
    mount: Mount
    sweep_every: float
    expire_every: float
    _maintenance: asyncio.Task[None] | None = field(default=None, init=False)

    def start(self) -> None:
        """Expire abandoned uploads and sweep integrity in the background (the server only)."""
        if self._maintenance is None:
            self._maintenance = asyncio.create_task(
                self.service.maintain(sweep_every=self.sweep_every, expire_every=self.expire_every)
            )

    async def close(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
            self._maintenance = None


async def storage(blobs: S3Blobs, config: EvidenceConfig) -> None:
    """The evidence buckets, created if missing (the write-once one with object lock, hence
    versioning). Refuses (BucketNotWriteOnce, logged naming the bucket and what failed) a
    bucket that cannot keep evidence write-once."""
    await blobs.ensure_bucket(config.bucket, object_lock=True)
    await blobs.ensure_bucket(config.staging_bucket, object_lock=False)
    try:
        await check_write_once(blobs, config.bucket)
    except BucketNotWriteOnce as refused:
        log.error("evidence service not started: %s (%s)", refused.message, refused.metadata)
        raise


async def build(
    settings: EvidenceSettings,
    database: Database,
    blobs: S3Blobs,
    clock: Callable[[], datetime],
    cases: CaseDirectory,
    alarm: Alarm | None = None,
    traffic: Callable[[str, int], None] | None = None,
) -> EvidenceComponent:
    """`alarm` raises the platform's alerts (a lock S3 did not keep, an object gone);
    `traffic` counts the bytes each stream carries."""
    config = evidence_config(settings)
    await storage(blobs, config)
    service = EvidenceService(
        uow=lambda: EvidenceTransaction(database.sessions),
        blobs=blobs,
        cases=cases,
        clock=clock,
        config=config,
        alarm=alarm,
    )
    mount = Mount.of(
        evidence_pb2.DESCRIPTOR.services_by_name["EvidenceService"],
        evidence_pb2_grpc.add_EvidenceServiceServicer_to_server,
        EvidenceApi(service, traffic),
    )
    return EvidenceComponent(
        service,
        mount,
        sweep_every=settings.sweep_interval_seconds,
        expire_every=min(300.0, settings.upload_ttl_seconds),
    )
