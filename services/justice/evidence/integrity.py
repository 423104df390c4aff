"""Does the stored object still hash to what was recorded: one record on demand, every
stored object in the sweep, and a report attachment before it is signed.

One object serves every record of the same content, so a verification updates all of them
and the sweep reads each object once. A mismatch or a missing object raises an alert.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from justice.evidence.catalogue import Catalogue
from justice.evidence.locking import INTEGRITY, WriteOnce
from justice.evidence.model import Evidence, EvidenceConfig, Integrity, parse_evidence_name
from justice.evidence.ports import BlobStore, EvidenceQuery, UnitOfWork
from justice.platform.errors import InvalidArgument
from justice.platform.listing import Page


@dataclass(frozen=True)
class Verification:
    integrity: Integrity
    recorded_sha256: str
    stored_sha256: str
    verify_time: datetime


@dataclass(frozen=True)
class SweepSummary:
    objects: int
    intact: int
    mismatched: int
    missing: int


async def hash_stream(chunks: AsyncIterator[bytes]) -> tuple[str, int]:
    """The SHA-256 and size of a stream of bytes."""
    hasher = hashlib.sha256()
    size = 0
    async for chunk in chunks:
        # hashlib releases the GIL on large buffers; a thread keeps the loop free.
        await asyncio.to_thread(hasher.update, chunk)
        size += len(chunk)
    return hasher.hexdigest(), size


class IntegritySweep:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        blobs: BlobStore,
        locks: WriteOnce,
        catalogue: Catalogue,
        clock: Callable[[], datetime],
        config: EvidenceConfig,
    ) -> None:
        self._uow = uow
        self._blobs = blobs
        self._locks = locks
        self._catalogue = catalogue
        self._clock = clock
        self._config = config

    async def verify(self, evidence: Evidence) -> Verification:
        """Hash the stored version again and record the result on every record it serves."""
        now = self._clock()
        stored = ""
        if await self._blobs.stat(evidence.bucket, evidence.key, evidence.version_id) is None:
            integrity = Integrity.MISSING
        else:
            stored, _ = await hash_stream(
                self._blobs.read(evidence.bucket, evidence.key, evidence.version_id)
            )
            integrity = Integrity.INTACT if stored == evidence.sha256 else Integrity.MISMATCH
        async with self._uow() as uow:
            for record in await uow.evidence.sharing_object(
                evidence.bucket, evidence.key, evidence.version_id
            ):
                if record.sha256 != evidence.sha256:
                    continue
                record.integrity = integrity
                record.verify_time = now
                await uow.evidence.update(record)
            await uow.commit()
        if integrity is not Integrity.INTACT:
            await self._locks.alert(
                INTEGRITY,
                evidence.name,
                f"{integrity.value} (recorded {evidence.sha256}, stored {stored or '-'})",
            )
        return Verification(integrity, evidence.sha256, stored, now)

    async def sweep(self, page_size: int = 200) -> SweepSummary:
        """Verify every stored object once, however many records share it."""
        counts = {i: 0 for i in Integrity}
        seen: set[tuple[str, str, str]] = set()
        after = ""
        while True:
            batch = await self._catalogue.list(EvidenceQuery(page=Page(page_size, after)))
            for evidence in batch:
                where = (evidence.bucket, evidence.key, evidence.version_id)
                if where in seen:
                    continue
                seen.add(where)
                counts[(await self.verify(evidence)).integrity] += 1
            if len(batch) < page_size:
                break
            after = batch[-1].evidence_id
        return SweepSummary(
            objects=len(seen),
            intact=counts[Integrity.INTACT],
            mismatched=counts[Integrity.MISMATCH],
            missing=counts[Integrity.MISSING],
        )

    async def check_stored(self, name: str) -> tuple[Evidence | None, bool]:
        """For a report attachment: the record (None when missing) and whether it is intact.

        Objects up to sign_rehash_max_bytes are re-hashed now; larger ones must exist with
        the recorded size and hash and must not have failed their last verification.
        """
        try:
            evidence_id = parse_evidence_name(name)
        except InvalidArgument:
            return None, False
        async with self._uow() as uow:
            evidence = await uow.evidence.get(evidence_id)
        if evidence is None:
            return None, False
        info = await self._blobs.stat(evidence.bucket, evidence.key, evidence.version_id)
        if info is None:
            return None, False
        if info.size != evidence.size_bytes or info.metadata.get("sha256") != evidence.sha256:
            return evidence, False
        if evidence.size_bytes <= self._config.sign_rehash_max_bytes:
            return evidence, (await self.verify(evidence)).integrity is Integrity.INTACT
        return evidence, evidence.integrity is not Integrity.MISMATCH
