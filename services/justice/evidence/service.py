"""Evidence use cases: streamed, resumable, content-addressed uploads under retention.

The one entry the API, the bridges and the composition root use. It receives its ports
(ports.py: repositories, blob store, case directory, clock, alarm) from the composition
root and assembles one module per capability on them: finding and visibility
(catalogue.py), the upload pipeline (uploads.py), sharing and legal holds (sharing.py),
the integrity sweep (integrity.py). Downloads and the maintenance task live here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from justice.evidence.catalogue import Catalogue, EvidenceScope
from justice.evidence.integrity import IntegritySweep, SweepSummary, Verification
from justice.evidence.locking import OBJECT_MISSING, WriteOnce
from justice.evidence.model import Evidence, EvidenceConfig, Metadata, UploadSession
from justice.evidence.ports import Alarm, BlobStore, CaseDirectory, EvidenceQuery, UnitOfWork
from justice.evidence.sharing import LegalHolds, SharedLink, Shares
from justice.evidence.uploads import ResumeRequest, UploadPipeline
from justice.platform.errors import DataLoss, FieldViolation, InvalidArgument, NotFound

# The service and the values its methods take and give (each defined in its capability's
# module): callers import them from here.
__all__ = [
    "Download",
    "EvidenceQuery",
    "EvidenceScope",
    "EvidenceService",
    "ResumeRequest",
    "SharedLink",
    "SweepSummary",
    "Verification",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Download:
    evidence: Evidence
    offset: int
    length: int
    chunks: AsyncIterator[bytes]


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


class EvidenceService:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        blobs: BlobStore,
        cases: CaseDirectory,
        clock: Callable[[], datetime],
        config: EvidenceConfig,
        alarm: Alarm | None = None,
    ) -> None:
        self._blobs = blobs
        self._locks = WriteOnce(blobs, alarm)
        self._config = config
        self._catalogue = Catalogue(uow, cases)
        self._uploads = UploadPipeline(uow, blobs, self._locks, cases, clock, config)
        self._shares = Shares(uow, blobs, self._catalogue, clock, config)
        self._holds = LegalHolds(uow, self._locks, self._catalogue)
        self._integrity = IntegritySweep(uow, blobs, self._locks, self._catalogue, clock, config)

    @property
    def config(self) -> EvidenceConfig:
        return self._config

    # ----- uploads (uploads.py) -----

    async def upload(
        self,
        uploader: str,
        start: Metadata | ResumeRequest,
        chunks: AsyncIterator[bytes],
        *,
        unit: str,
    ) -> Evidence:
        """Stream a file in for `uploader`, a member of `unit` (both recorded)."""
        return await self._uploads.upload(uploader, start, chunks, unit=unit)

    async def get_upload(self, uploader: str, name: str) -> UploadSession:
        return await self._uploads.get_upload(uploader, name)

    async def expire_uploads(self, limit: int = 100) -> int:
        """Abort and forget uploads nobody resumed within the TTL."""
        return await self._uploads.expire_uploads(limit)

    # ----- reading (catalogue.py) -----

    async def get(self, name: str, scope: EvidenceScope | None = None) -> Evidence:
        return await self._catalogue.get(name, scope)

    async def list(
        self, query: EvidenceQuery, scope: EvidenceScope | None = None
    ) -> Sequence[Evidence]:
        return await self._catalogue.list(query, scope)

    async def download(
        self, name: str, offset: int, length: int, scope: EvidenceScope | None = None
    ) -> Download:
        evidence = await self.get(name, scope)
        if offset < 0 or length < 0:
            raise InvalidArgument.of([FieldViolation("offset", "offset and length not negative")])
        if offset > evidence.size_bytes or (offset == evidence.size_bytes and offset > 0):
            raise InvalidArgument(
                "RANGE_NOT_SATISFIABLE",
                f"offset beyond the {evidence.size_bytes} bytes",
                violations=[FieldViolation("offset", f"below {evidence.size_bytes}")],
            )
        available = evidence.size_bytes - offset
        length = min(length, available) if length else available
        chunks = self._blobs.read(
            evidence.bucket, evidence.key, evidence.version_id, offset=offset, length=length
        )
        # The first chunk now: a missing object answers before any response is sent.
        try:
            first = await anext(chunks)
        except NotFound:
            await self._locks.alert(
                OBJECT_MISSING,
                evidence.name,
                f"{evidence.bucket}/{evidence.key} version {evidence.version_id} is not there",
            )
            raise DataLoss(
                "EVIDENCE_OBJECT_MISSING",
                "the stored bytes of this evidence are missing",
                metadata={"name": evidence.name},
            ) from None
        except StopAsyncIteration:
            first = b""
        return Download(evidence, offset, length, _prepend(first, chunks))

    # ----- retention and sharing (sharing.py) -----

    async def set_legal_hold(self, name: str, scope: EvidenceScope | None = None) -> Evidence:
        return await self._holds.set(name, scope)

    async def release_legal_hold(self, name: str, scope: EvidenceScope | None = None) -> Evidence:
        return await self._holds.release(name, scope)

    async def share(
        self,
        sharer: str,
        name: str,
        partner: str,
        expiry: timedelta | None,
        purpose: str,
        scope: EvidenceScope | None = None,
    ) -> SharedLink:
        return await self._shares.share(sharer, name, partner, expiry, purpose, scope)

    # ----- integrity (integrity.py) -----

    async def verify(self, name: str, scope: EvidenceScope | None = None) -> Verification:
        return await self._integrity.verify(await self.get(name, scope))

    async def sweep(self, page_size: int = 200) -> SweepSummary:
        """Verify every stored object once, however many records share it."""
        return await self._integrity.sweep(page_size)

    async def check_stored(self, name: str) -> tuple[Evidence | None, bool]:
        """For a report attachment: the record (None when missing) and whether it is intact."""
        return await self._integrity.check_stored(name)

    async def maintain(self, *, sweep_every: float, expire_every: float) -> None:
        """Background task: expire abandoned uploads, and sweep integrity (0 disables it)."""
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + sweep_every if sweep_every > 0 else float("inf")
        while True:
            await asyncio.sleep(max(0.0, min(expire_every, next_sweep - loop.time())))
            try:
                await self.expire_uploads()
                if loop.time() >= next_sweep:
                    summary = await self.sweep()
                    log.info(
                        "evidence sweep: %d objects, %d intact, %d mismatched, %d missing",
                        summary.objects,
                        summary.intact,
                        summary.mismatched,
                        summary.missing,
                    )
                    next_sweep = loop.time() + sweep_every
            except Exception:
                # Keep running: one failed round (S3 or database down) must not end the task.
                log.exception("evidence maintenance round failed")
