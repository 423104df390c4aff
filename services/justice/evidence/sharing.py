"""Handing evidence on and keeping it: time-limited links for partners, and legal holds.

A link is a presigned GET of the exact S3 version, recorded as a Share (who, to whom, why,
until when). A legal hold is set on the object version and read back (locking.py); one
object serves every record of the same content, so it stays held while any record holds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from justice.evidence.catalogue import Catalogue, EvidenceScope, load
from justice.evidence.locking import WriteOnce
from justice.evidence.model import (
    Evidence,
    EvidenceConfig,
    Share,
    check_partner,
    new_id,
    parse_evidence_name,
)
from justice.evidence.ports import BlobStore, UnitOfWork
from justice.platform.errors import FailedPrecondition, FieldViolation, InvalidArgument


@dataclass(frozen=True)
class SharedLink:
    share: Share
    url: str


class Shares:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        blobs: BlobStore,
        catalogue: Catalogue,
        clock: Callable[[], datetime],
        config: EvidenceConfig,
    ) -> None:
        self._uow = uow
        self._blobs = blobs
        self._catalogue = catalogue
        self._clock = clock
        self._config = config

    async def share(
        self,
        sharer: str,
        name: str,
        partner: str,
        expiry: timedelta | None,
        purpose: str,
        scope: EvidenceScope | None = None,
    ) -> SharedLink:
        check_partner(partner)
        if not purpose.strip() or len(purpose) > 512:
            raise InvalidArgument.of([FieldViolation("purpose", "1-512 characters")])
        expiry = expiry or self._config.share_default
        if expiry <= timedelta(0):
            raise InvalidArgument.of([FieldViolation("expiry", "positive")])
        if expiry > self._config.share_max:
            raise InvalidArgument(
                "EXPIRY_TOO_LONG",
                f"links live at most {int(self._config.share_max.total_seconds())} s",
                violations=[FieldViolation("expiry", "above the configured maximum")],
            )
        await self._catalogue.get(name, scope)
        now = self._clock()
        async with self._uow() as uow:
            evidence = await load(uow, parse_evidence_name(name))
            if not evidence.version_id:
                # A link without a version would serve whatever is written at the key later.
                raise FailedPrecondition(
                    "EVIDENCE_VERSION_UNKNOWN",
                    "this evidence was recorded without its S3 version; it cannot be shared",
                    metadata={"name": evidence.name},
                )
            share = Share(
                share_id=new_id(),
                evidence_id=evidence.evidence_id,
                sharer=sharer,
                partner=partner,
                purpose=purpose,
                create_time=now,
                expire_time=now + expiry,
            )
            await uow.shares.add(share)
            url = self._blobs.presigned_get(
                evidence.bucket, evidence.key, evidence.version_id, expiry
            )
            await uow.commit()
        return SharedLink(share, url)


class LegalHolds:
    def __init__(
        self, uow: Callable[[], UnitOfWork], locks: WriteOnce, catalogue: Catalogue
    ) -> None:
        self._uow = uow
        self._locks = locks
        self._catalogue = catalogue

    async def set(self, name: str, scope: EvidenceScope | None = None) -> Evidence:
        evidence = await self._catalogue.get(name, scope)
        await self._locks.legal_hold(
            evidence.bucket, evidence.key, evidence.version_id, True, subject=evidence.name
        )
        async with self._uow() as uow:
            evidence = await load(uow, evidence.evidence_id)
            evidence.legal_hold = True
            await uow.evidence.update(evidence)
            await uow.commit()
        return evidence

    async def release(self, name: str, scope: EvidenceScope | None = None) -> Evidence:
        await self._catalogue.get(name, scope)
        async with self._uow() as uow:
            evidence = await load(uow, parse_evidence_name(name))
            evidence.legal_hold = False
            await uow.evidence.update(evidence)
            same = await uow.evidence.sharing_object(
                evidence.bucket, evidence.key, evidence.version_id
            )
            # One object serves every record of the same content: it stays held while any holds.
            still_held = any(e.legal_hold for e in same if e.evidence_id != evidence.evidence_id)
            if not still_held:
                await self._locks.legal_hold(
                    evidence.bucket, evidence.key, evidence.version_id, False, subject=evidence.name
                )
            await uow.commit()
        return evidence
