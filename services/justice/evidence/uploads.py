"""The upload pipeline: a file streamed in, hashed as it goes, stored once at its content
address under retention, resumable after a cut.

Running hash and resuming. hashlib cannot serialise its state, and S3 cannot read
back the parts of an unfinished multipart upload. So an upload's running SHA-256,
as it stood at the committed offset, stays pinned in this process (a copy() per
part). A cut stream resumes against the same process. If the process restarted
meanwhile, the upload still resumes from the session row (offset, parts, S3 upload
id): the rest is streamed into new parts, and once complete the whole file is hashed
back from storage (one extra read, only for uploads that outlived a process). An
upload of content already stored writes nothing, so after a restart it has nothing
to re-hash: it answers FAILED_PRECONDITION UPLOAD_STATE_LOST and starts again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from justice.evidence.integrity import hash_stream
from justice.evidence.locking import WriteOnce
from justice.evidence.model import (
    Evidence,
    EvidenceConfig,
    Metadata,
    Part,
    Retention,
    UploadSession,
    check_metadata,
    content_key,
    new_id,
    parse_upload_name,
)
from justice.evidence.multipart import Hasher, PartWindow
from justice.evidence.ports import BlobStore, CaseDirectory, UnitOfWork
from justice.platform.errors import (
    Aborted,
    AlreadyExists,
    DataLoss,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    JusticeError,
    NotFound,
    ResourceExhausted,
)


@dataclass(frozen=True)
class ResumeRequest:
    upload: str
    offset: int


class _Pinned:
    """An upload's running hash at its committed offset, and who is streaming into it.

    `rehash`: the hash of the committed prefix died with an earlier process; the stored
    file is hashed from S3 once complete."""

    def __init__(self, *, rehash: bool = False) -> None:
        self.hasher: Hasher = hashlib.sha256()
        self.busy = asyncio.Lock()
        self.rehash = rehash


def _metadata_for_object(sha256: str, size: int) -> dict[str, str]:
    # No personal data in object metadata: only what proves the content.
    return {"sha256": sha256, "size": str(size)}


class UploadPipeline:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        blobs: BlobStore,
        locks: WriteOnce,
        cases: CaseDirectory,
        clock: Callable[[], datetime],
        config: EvidenceConfig,
    ) -> None:
        self._uow = uow
        self._blobs = blobs
        self._locks = locks
        self._cases = cases
        self._clock = clock
        self._config = config
        self._pinned: dict[str, _Pinned] = {}

    async def upload(
        self,
        uploader: str,
        start: Metadata | ResumeRequest,
        chunks: AsyncIterator[bytes],
        *,
        unit: str,
    ) -> Evidence:
        """Stream a file in for `uploader`, a member of `unit` (both recorded)."""
        if isinstance(start, ResumeRequest):
            session = await self._resumable(uploader, start)
        else:
            begun = await self._begin(uploader, unit, start)
            if isinstance(begun, Evidence):
                return begun
            session = begun
        pinned = self._pinned[session.upload_id]
        if pinned.busy.locked():
            raise Aborted(
                "UPLOAD_BUSY",
                "another stream is writing this upload",
                metadata={"upload": session.name},
            )
        async with pinned.busy:
            if isinstance(start, ResumeRequest):
                # Read again under the lock: a cut stream that let go of the upload since the
                # read above may have committed its last parts and moved the offset.
                session = await self._resumable(uploader, start)
            return await self._pump(session, pinned, chunks)

    async def _begin(self, uploader: str, unit: str, meta: Metadata) -> Evidence | UploadSession:
        """A new session, or the evidence an earlier call with this request_id made."""
        now = self._clock()
        category = check_metadata(meta, self._config, now)
        if meta.declared_size > self._config.max_upload_bytes:
            raise ResourceExhausted(
                "UPLOAD_TOO_LARGE",
                f"uploads are limited to {self._config.max_upload_bytes} bytes",
                metadata={"max_bytes": str(self._config.max_upload_bytes)},
            )
        await self._check_case(meta)
        async with self._uow() as uow:
            earlier = await uow.evidence.by_request(uploader, meta.request_id)
            if earlier is not None:
                return earlier
            existing = await uow.uploads.get(meta.request_id)
            if existing is not None:
                if existing.uploader != uploader:
                    raise AlreadyExists("UPLOAD_ID_TAKEN", "choose another request_id")
                raise FailedPrecondition(
                    "UPLOAD_IN_PROGRESS",
                    "this upload exists; resume it at its committed offset",
                    metadata={
                        "upload": existing.name,
                        "committed_offset": str(existing.committed_offset),
                    },
                )
        if meta.declared_sha256:
            bucket, key = self._config.bucket, content_key(meta.declared_sha256)
            # Content already stored: the bytes are only hashed, never written again.
            exists = await self._blobs.stat(bucket, key) is not None
        else:
            bucket, key, exists = self._config.staging_bucket, f"uploads/{meta.request_id}", False
        s3_upload_id = ""
        if not exists:
            # No lock headers here: radosgw 16.2 ignores them on a multipart start and
            # SeaweedFS refuses them in a bucket without object lock. The lock is set on the
            # completed version and read back (_place), the same way on every server.
            s3_upload_id = await self._blobs.start_multipart(
                bucket,
                key,
                content_type=meta.media_type,
                metadata=_metadata_for_object(meta.declared_sha256, meta.declared_size)
                if meta.declared_sha256
                else {},
            )
        session = UploadSession(
            upload_id=meta.request_id,
            uploader=uploader,
            unit=unit,
            metadata=meta,
            category=category,
            bucket=bucket,
            key=key,
            s3_upload_id=s3_upload_id,
            expire_time=now + self._config.upload_ttl,
        )
        try:
            async with self._uow() as uow:
                await uow.uploads.add(session)
                await uow.commit()
        except BaseException:
            await self._abort_s3(session)
            raise
        self._pinned[session.upload_id] = _Pinned()
        return session

    async def _resumable(self, uploader: str, request: ResumeRequest) -> UploadSession:
        upload_id = parse_upload_name(request.upload, "resume.upload")
        async with self._uow() as uow:
            session = await uow.uploads.get(upload_id)
        if session is None or session.uploader != uploader:
            raise NotFound("UPLOAD_NOT_FOUND", f"no upload {request.upload}")
        if session.expire_time <= self._clock():
            raise FailedPrecondition("UPLOAD_EXPIRED", "the upload expired; start again")
        if upload_id not in self._pinned:
            if not session.s3_upload_id:
                # Content already stored: nothing of this upload was written to re-hash.
                await self._discard(session)
                raise FailedPrecondition(
                    "UPLOAD_STATE_LOST",
                    "the server restarted since this upload began; start again from zero",
                )
            self._pinned[upload_id] = _Pinned(rehash=True)
        if request.offset != session.committed_offset:
            raise FailedPrecondition(
                "OFFSET_MISMATCH",
                f"resume from the committed offset {session.committed_offset}",
                metadata={"committed_offset": str(session.committed_offset)},
            )
        return session

    async def get_upload(self, uploader: str, name: str) -> UploadSession:
        upload_id = parse_upload_name(name)
        async with self._uow() as uow:
            session = await uow.uploads.get(upload_id)
        if session is None or session.uploader != uploader:
            raise NotFound("UPLOAD_NOT_FOUND", f"no upload {name}")
        return session

    async def _pump(
        self, session: UploadSession, pinned: _Pinned, chunks: AsyncIterator[bytes]
    ) -> Evidence:
        config = self._config
        meta = session.metadata
        received = session.committed_offset

        async def upload(number: int, data: memoryview) -> str:
            if not session.s3_upload_id:
                return ""  # the content is stored already: only hashed
            return await self._blobs.upload_part(
                session.bucket, session.key, session.s3_upload_id, number, data
            )

        async def commit(parts: list[Part], hasher: Hasher) -> None:
            now = self._clock()
            for part in parts:
                session.commit(part, now, config.upload_ttl)
            async with self._uow() as uow:
                await uow.uploads.update(session)
                await uow.commit()
            # Only once the offset is durable does the pinned hash move to it.
            pinned.hasher = hasher

        window = PartWindow(
            part_bytes=config.part_size,
            in_flight=config.parts_in_flight,
            first_number=len(session.parts) + 1,
            hasher=pinned.hasher.copy(),
            upload=upload,
            commit=commit,
        )
        try:
            async for chunk in chunks:
                if len(chunk) > config.max_chunk_bytes:
                    raise InvalidArgument(
                        "CHUNK_TOO_LARGE",
                        f"chunks are at most {config.max_chunk_bytes} bytes",
                        violations=[
                            FieldViolation("chunk", f"at most {config.max_chunk_bytes} bytes")
                        ],
                    )
                received += len(chunk)
                if received > config.max_upload_bytes:
                    raise ResourceExhausted(
                        "UPLOAD_TOO_LARGE",
                        f"uploads are limited to {config.max_upload_bytes} bytes",
                        metadata={"max_bytes": str(config.max_upload_bytes)},
                    )
                if meta.declared_size and received > meta.declared_size:
                    raise InvalidArgument(
                        "SIZE_MISMATCH",
                        f"more bytes than the declared {meta.declared_size}",
                        violations=[FieldViolation("metadata.declared_size", "exceeded")],
                    )
                await window.write(chunk)
            if not meta.declared_size or received == meta.declared_size:
                await window.close()
                return await self._finish(session, pinned)
        except JusticeError as error:
            await window.settle()
            if error.reason != "OBJECT_STORAGE_UNAVAILABLE":
                # A client's mistake or a hash mismatch: nothing of it may remain.
                await self._discard(session)
            raise
        except BaseException:
            # A cut stream: keep what is committed, including the parts in flight.
            await window.settle()
            raise
        # Short of the declared size: a cut connection ends a stream just like a finished
        # one, so keep the whole parts and let the client resume (or the upload expire).
        await window.settle()
        raise FailedPrecondition(
            "UPLOAD_INCOMPLETE",
            f"the stream ended at byte {received} of the declared {meta.declared_size}; "
            "resume at the committed offset",
            metadata={"upload": session.name, "committed_offset": str(session.committed_offset)},
        )

    async def _finish(self, session: UploadSession, pinned: _Pinned) -> Evidence:
        meta = session.metadata
        size = session.committed_offset
        if size == 0:
            raise InvalidArgument(
                "EMPTY_UPLOAD",
                "the upload carried no bytes",
                violations=[FieldViolation("chunk", "at least one byte")],
            )
        if meta.declared_size and size != meta.declared_size:
            raise InvalidArgument(
                "SIZE_MISMATCH",
                f"received {size} bytes, declared {meta.declared_size}",
                violations=[FieldViolation("metadata.declared_size", "does not match the bytes")],
                metadata={"received_size": str(size)},
            )
        sha256 = await self._rehash(session) if pinned.rehash else pinned.hasher.hexdigest()
        if meta.declared_sha256 and sha256 != meta.declared_sha256:
            raise DataLoss(
                "SHA256_MISMATCH",
                "the bytes do not hash to the declared sha256",
                metadata={"received_sha256": sha256},
            )
        now = self._clock()
        wanted = self._retention(session.category, now)
        version_id, retention = await self._place(session, sha256, size, wanted)
        evidence = Evidence(
            evidence_id=new_id(),
            metadata=meta,
            uploader=session.uploader,
            unit=session.unit,
            category=session.category,
            size_bytes=size,
            sha256=sha256,
            bucket=self._config.bucket,
            key=content_key(sha256),
            version_id=version_id,
            retention=retention,
            create_time=now,
        )
        async with self._uow() as uow:
            # One object serves every record of its content: all report the lock S3 holds.
            for record in await uow.evidence.sharing_object(
                evidence.bucket, evidence.key, version_id
            ):
                if record.retention != retention:
                    record.retention = retention
                    await uow.evidence.update(record)
            await uow.evidence.add(evidence)
            await uow.uploads.remove(session.upload_id)
            await uow.commit()
        self._pinned.pop(session.upload_id, None)
        return evidence

    async def _place(
        self, session: UploadSession, sha256: str, size: int, wanted: Retention
    ) -> tuple[str, Retention]:
        """Put the verified bytes at their content address, once; lock that version and
        return it with the retention S3 holds (read back: see locking.py)."""
        bucket, key = self._config.bucket, content_key(sha256)
        if session.completed is not None and not session.stages:
            # Completed at its content address already, to be hashed back: lock it.
            version, session.completed = session.completed, None
            return await self._locks.place(
                bucket, key, version, sha256, wanted, subject=session.name
            )
        existing = await self._blobs.stat(bucket, key)
        if existing is not None:
            # Same content stored before: keep one copy, drop ours, lengthen the lock if needed.
            await self._abort_s3(session)
            version = await self._locks.pinned_version(bucket, key, existing.version_id, sha256)
            return version, await self._locks.hold(
                bucket, key, version, wanted, subject=session.name
            )
        parts = [(p.number, p.etag) for p in session.parts]
        if not session.stages:
            version = await self._blobs.complete_multipart(bucket, key, session.s3_upload_id, parts)
        else:
            staged = session.key
            if session.s3_upload_id:
                await self._blobs.complete_multipart(
                    session.bucket, staged, session.s3_upload_id, parts
                )
            try:
                version = await self._blobs.copy(
                    session.bucket,
                    staged,
                    bucket,
                    key,
                    content_type=session.metadata.media_type,
                    metadata=_metadata_for_object(sha256, size),
                )
            finally:
                await self._blobs.remove(session.bucket, staged)
                session.completed = None
        return await self._locks.place(bucket, key, version, sha256, wanted, subject=session.name)

    async def _rehash(self, session: UploadSession) -> str:
        """Complete the multipart upload where it is and hash the stored file back."""
        parts = [(p.number, p.etag) for p in session.parts]
        version = await self._blobs.complete_multipart(
            session.bucket, session.key, session.s3_upload_id, parts
        )
        session.s3_upload_id, session.completed = "", version
        sha256, _ = await hash_stream(self._blobs.read(session.bucket, session.key, version))
        return sha256

    async def _abort_s3(self, session: UploadSession) -> None:
        if session.s3_upload_id:
            await self._blobs.abort_multipart(session.bucket, session.key, session.s3_upload_id)
            session.s3_upload_id = ""
        elif session.completed is not None:
            # Completed to be re-hashed, then refused or a duplicate: not evidence, remove it.
            version, session.completed = session.completed, None
            if version:
                await self._blobs.remove_version(session.bucket, session.key, version)
            else:
                await self._blobs.remove(session.bucket, session.key)

    async def _discard(self, session: UploadSession) -> None:
        """Abort the multipart upload and forget the session."""
        self._pinned.pop(session.upload_id, None)
        try:
            await self._abort_s3(session)
        finally:
            async with self._uow() as uow:
                await uow.uploads.remove(session.upload_id)
                await uow.commit()

    async def expire_uploads(self, limit: int = 100) -> int:
        """Abort and forget uploads nobody resumed within the TTL."""
        async with self._uow() as uow:
            stale = await uow.uploads.expired(self._clock(), limit)
        for session in stale:
            pinned = self._pinned.get(session.upload_id)
            if pinned is not None and pinned.busy.locked():
                continue
            await self._discard(session)
        return len(stale)

    def _retention(self, category: str, now: datetime) -> Retention:
        rule = self._config.retention[category]
        return Retention(rule.mode, (now + rule.period).replace(microsecond=0))

    async def _check_case(self, meta: Metadata) -> None:
        if meta.report:
            case = await self._cases.report_case(meta.report)
            if case is None:
                raise InvalidArgument(
                    "UNKNOWN_REPORT",
                    f"no report {meta.report}",
                    violations=[FieldViolation("metadata.report", "no such report")],
                )
            if case != meta.case_number:
                raise InvalidArgument(
                    "REPORT_OF_OTHER_CASE",
                    "the report belongs to another case",
                    violations=[FieldViolation("metadata.report", "belongs to another case")],
                )
        elif not await self._cases.case_known(meta.case_number):
            raise InvalidArgument(
                "UNKNOWN_CASE",
                f"no case {meta.case_number}",
                violations=[FieldViolation("metadata.case_number", "no such case")],
            )
