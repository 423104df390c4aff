"""Write-once, checked: pin a stored version, lock it, read the lock back, refuse what S3
does not keep.

Some S3 servers accept object-lock headers and do not keep them: radosgw 16.2 ignores them
on CreateMultipartUpload (Ceph tracker 63724) while a single PUT is locked, and server-side
copies drop them on others. So every version the platform stores is locked after it is
written, on that exact version, and then read back: what S3 reports is what the platform
records. A version S3 does not hold at least as long and as hard as wanted is refused with
FAILED_PRECONDITION OBJECT_LOCK_NOT_HELD (retrying does not help: the store has to be
fixed) and an alert is raised. A record never pins an empty version: where S3 names none
(radosgw's CopyObject answer), the content address is asked (HEAD) and its sha256 checked.

`check_write_once` is the start-up check of the evidence bucket: versioned, made with
object lock, and a probe version under a legal hold really cannot be deleted.
"""

from __future__ import annotations

import logging
import secrets

from justice.evidence.model import Retention, RetentionMode
from justice.evidence.ports import Alarm, LockStore
from justice.platform.errors import FailedPrecondition, JusticeError, Unavailable

log = logging.getLogger(__name__)

# Alert kinds (the audit alert rules of the same names).
LOCK_NOT_HELD = "EVIDENCE_LOCK_NOT_HELD"
OBJECT_MISSING = "EVIDENCE_OBJECT_MISSING"
INTEGRITY = "EVIDENCE_INTEGRITY"
# Where the start-up probe writes; it removes its version again.
PROBE_PREFIX = "write-once-probe/"
# The version of an object written while versioning was off or suspended.
_NULL_VERSION = "null"


class LockNotHeld(FailedPrecondition):
    """S3 does not keep the lock the platform asked for on a version."""


class WriteOnce:
    def __init__(self, blobs: LockStore, alarm: Alarm | None = None) -> None:
        self._blobs = blobs
        self._alarm = alarm

    async def place(
        self, bucket: str, key: str, reported: str, sha256: str, wanted: Retention, *, subject: str
    ) -> tuple[str, Retention]:
        """Pin and lock a version just written (its version as S3 `reported` it); return it
        with the retention S3 holds. A version S3 will not lock is removed again, so no
        unlocked copy stays for a later upload to take as locked evidence."""
        version = reported
        try:
            version = await self.pinned_version(bucket, key, reported, sha256)
            return version, await self.hold(bucket, key, version, wanted, subject=subject)
        except FailedPrecondition:
            try:
                if version and version != _NULL_VERSION:
                    removed = await self._blobs.remove_version(bucket, key, version)
                else:
                    await self._blobs.remove(bucket, key)
                    removed = True
            except Exception:  # the refusal stands; an operator cleans up
                removed = False
            if not removed:
                log.error("unlocked evidence version %s of %s could not be removed", version, key)
            raise

    async def pinned_version(self, bucket: str, key: str, reported: str, sha256: str) -> str:
        """The version holding the content; never "" or "null" (a record pins its version).

        Where S3 named none, HEAD the content address and take its latest version if it
        carries this content's hash."""
        if reported and reported != _NULL_VERSION:
            return reported
        info = await self._blobs.stat(bucket, key)
        if (
            info is not None
            and info.version_id not in ("", _NULL_VERSION)
            and info.metadata.get("sha256") == sha256
        ):
            return info.version_id
        await self.alert(LOCK_NOT_HELD, key, f"{bucket}/{key}: S3 names no version")
        raise FailedPrecondition(
            "OBJECT_VERSION_UNKNOWN",
            "object storage names no version of the stored content; the evidence bucket "
            "must be versioned",
            metadata={"bucket": bucket},
        )

    async def held(self, bucket: str, key: str, version_id: str) -> Retention | None:
        found = await self._blobs.lock(bucket, key, version_id)
        return Retention(RetentionMode(found.mode), found.until) if found else None

    async def hold(
        self, bucket: str, key: str, version_id: str, wanted: Retention, *, subject: str
    ) -> Retention:
        """Lock the version at least as `wanted` (a lock only ever grows) and return the
        retention S3 holds, read back. Raises LockNotHeld when S3 holds less."""
        current = await self.held(bucket, key, version_id)
        needed = current.covering(wanted) if current else wanted
        refusal = ""
        if needed != current:
            # A GOVERNANCE lock made COMPLIANCE is a stronger lock, but S3 counts it as a
            # change of a governance lock: it needs the bypass (never used to shorten one).
            upgrade = current is not None and current.mode is not needed.mode
            try:
                await self._blobs.set_lock(
                    bucket, key, version_id, needed, bypass_governance=upgrade
                )
            except Unavailable:
                raise
            except JusticeError as error:
                refusal = error.message
        held = await self.held(bucket, key, version_id)
        if held is None or held.covering(wanted) != held:
            have = f"{held.mode.value} until {held.until.isoformat()}" if held else "no lock"
            summary = (
                f"{bucket}/{key} version {version_id} of {subject}: wanted "
                f"{wanted.mode.value} until {wanted.until.isoformat()}, S3 holds {have}"
                + (f" ({refusal})" if refusal else "")
            )
            await self.alert(LOCK_NOT_HELD, subject, summary)
            raise LockNotHeld(
                "OBJECT_LOCK_NOT_HELD",
                "object storage does not keep the evidence lock; nothing was recorded",
                metadata={
                    "bucket": bucket,
                    "wanted_mode": wanted.mode.value,
                    "held_mode": held.mode.value if held else "",
                },
            )
        return held

    async def legal_hold(
        self, bucket: str, key: str, version_id: str, on: bool, *, subject: str
    ) -> None:
        """Set or release a legal hold and read it back; LockNotHeld when S3 differs."""
        refusal = ""
        try:
            await self._blobs.set_legal_hold(bucket, key, version_id, on)
        except Unavailable:
            raise
        except JusticeError as error:
            refusal = error.message
        if await self._blobs.legal_hold(bucket, key, version_id) != on:
            state = "set" if on else "released"
            await self.alert(
                LOCK_NOT_HELD,
                subject,
                f"{bucket}/{key} version {version_id} of {subject}: legal hold not {state}"
                + (f" ({refusal})" if refusal else ""),
            )
            raise LockNotHeld(
                "LEGAL_HOLD_NOT_HELD",
                f"object storage did not keep the legal hold {state}",
                metadata={"bucket": bucket},
            )

    async def alert(self, kind: str, subject: str, summary: str) -> None:
        # Identifiers and hashes only, never metadata about people.
        log.error("EVIDENCE ALERT %s %s: %s", kind, subject, summary)
        if self._alarm is None:
            return
        try:
            await self._alarm.raise_alert(kind, subject, summary)
        except Exception as error:  # the refusal stands even when the alert cannot be stored
            log.error("alert %s not stored: %s", kind, type(error).__name__)


class BucketNotWriteOnce(FailedPrecondition):
    """The evidence bucket cannot keep evidence write-once; the service must not start."""


async def check_write_once(blobs: LockStore, bucket: str) -> None:
    """Refuse a bucket that is not versioned, has no object lock, or lets a held version be
    deleted. The probe version is released and deleted again (a bucket default retention,
    if any, keeps it until that ends)."""

    def refuse(failed: str, detail: str) -> BucketNotWriteOnce:
        return BucketNotWriteOnce(
            "EVIDENCE_BUCKET_NOT_WRITE_ONCE",
            f"evidence bucket {bucket!r}: {detail}",
            metadata={"bucket": bucket, "property": failed},
        )

    if not await blobs.bucket_versioned(bucket):
        raise refuse("versioning", "versioning is not enabled")
    if not await blobs.bucket_object_lock(bucket):
        raise refuse("object_lock", "object lock is not enabled (make the bucket with it)")
    key = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
    version = await blobs.put(bucket, key, b"write-once probe")
    if not version:
        raise refuse("versioning", "a new object got no version id")
    try:
        await blobs.set_legal_hold(bucket, key, version, True)
    except JusticeError as error:
        if isinstance(error, Unavailable):
            raise
        await blobs.remove_version(bucket, key, version)
        raise refuse("legal_hold", f"a legal hold cannot be set ({error.message})") from None
    deleted = await blobs.remove_version(bucket, key, version)
    if not deleted:
        await blobs.set_legal_hold(bucket, key, version, False)
        await blobs.remove_version(bucket, key, version)
        return
    raise refuse("legal_hold", "a version under legal hold was deleted by its version id")
