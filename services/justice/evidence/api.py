"""EvidenceService servicer: proto in, domain call, proto out. No SQL, no S3, no rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from justice.evidence.headers import RANGE_HEADER, SHA256_HEADER, SIZE_HEADER
from justice.evidence.model import Evidence, Metadata, UploadSession
from justice.evidence.service import (
    EvidenceQuery,
    EvidenceScope,
    EvidenceService,
    ResumeRequest,
    Verification,
)
from justice.evidence.v1 import evidence_pb2 as pb
from justice.evidence.v1 import evidence_pb2_grpc
from justice.platform.errors import FieldViolation, InvalidArgument, NotFound
from justice.platform.listing import next_token, page, parse_filter
from justice.platform.timestamps import duration, moment, timestamp
from justice.security.identity import current_principal
from justice.security.rules import Condition, current_access

Context = grpc.aio.ServicerContext[Any, Any]

DOWNLOAD_CHUNK_BYTES = 1024 * 1024


def metadata_from_proto(meta: pb.EvidenceMetadata) -> Metadata:
    return Metadata(
        case_number=meta.case_number,
        media_type=meta.media_type,
        original_filename=meta.original_filename,
        request_id=meta.request_id,
        report=meta.report,
        capture_time=moment(meta, "capture_time", "metadata.capture_time"),
        capture_device=meta.capture_device,
        category=meta.category,
        declared_size=meta.declared_size,
        declared_sha256=meta.declared_sha256,
    )


def metadata_to_proto(meta: Metadata) -> pb.EvidenceMetadata:
    return pb.EvidenceMetadata(
        case_number=meta.case_number,
        report=meta.report,
        media_type=meta.media_type,
        original_filename=meta.original_filename,
        capture_time=timestamp(meta.capture_time),
        capture_device=meta.capture_device,
        category=meta.category,
        declared_size=meta.declared_size,
        declared_sha256=meta.declared_sha256,
        request_id=meta.request_id,
    )


def evidence_to_proto(evidence: Evidence) -> pb.Evidence:
    meta = evidence.metadata
    return pb.Evidence(
        name=evidence.name,
        case_number=meta.case_number,
        report=meta.report,
        media_type=meta.media_type,
        original_filename=meta.original_filename,
        capture_time=timestamp(meta.capture_time),
        capture_device=meta.capture_device,
        uploader=evidence.uploader,
        category=evidence.category,
        size_bytes=evidence.size_bytes,
        sha256=evidence.sha256,
        retention_mode=pb.RetentionMode.Value(evidence.retention.mode.value),
        retain_until=timestamp(evidence.retention.until),
        legal_hold=evidence.legal_hold,
        integrity=pb.Integrity.Value(evidence.integrity.value),
        verify_time=timestamp(evidence.verify_time),
        create_time=timestamp(evidence.create_time),
    )


def upload_to_proto(session: UploadSession) -> pb.Upload:
    return pb.Upload(
        name=session.name,
        committed_offset=session.committed_offset,
        expire_time=timestamp(session.expire_time),
        metadata=metadata_to_proto(session.metadata),
    )


def verification_to_proto(result: Verification) -> pb.VerifyEvidenceResponse:
    return pb.VerifyEvidenceResponse(
        integrity=pb.Integrity.Value(result.integrity.value),
        recorded_sha256=result.recorded_sha256,
        stored_sha256=result.stored_sha256,
        verify_time=timestamp(result.verify_time),
    )


_FILTER_FIELDS: dict[str, Callable[[str], object]] = {
    "case_number": str,
    "report": str,
    "media_type": str,
}


async def _first(
    requests: AsyncIterator[pb.UploadEvidenceRequest],
) -> Metadata | ResumeRequest:
    async for request in requests:
        kind = request.WhichOneof("payload")
        if kind == "metadata":
            return metadata_from_proto(request.metadata)
        if kind == "resume":
            return ResumeRequest(request.resume.upload, request.resume.offset)
        raise InvalidArgument(
            "METADATA_MISSING",
            "the first message must carry metadata or resume, before any chunk",
            violations=[FieldViolation("metadata", "send it first")],
        )
    raise InvalidArgument(
        "METADATA_MISSING",
        "the stream carried no messages",
        violations=[FieldViolation("metadata", "required")],
    )


def _uncounted(direction: str, size: int) -> None:
    pass


async def _chunks(
    requests: AsyncIterator[pb.UploadEvidenceRequest],
    context: Context,
    traffic: Callable[[str, int], None] = _uncounted,
) -> AsyncIterator[bytes]:
    async for request in requests:
        if request.WhichOneof("payload") != "chunk":
            raise InvalidArgument(
                "UNEXPECTED_MESSAGE",
                "after the first message only chunks may follow",
                violations=[FieldViolation("payload", "only chunk after the first message")],
            )
        traffic("in", len(request.chunk))
        yield request.chunk
    # A cancelled or cut call ends the request stream just like a finished one, with its
    # cancellation already queued: let it land before this end is taken for the file's end.
    await asyncio.sleep(0)
    if context.cancelled():
        raise asyncio.CancelledError


def evidence_scope() -> EvidenceScope | None:
    """The authorisation conditions of this call as an evidence scope (None: sees all).

    No custody service exists yet, so IN_CUSTODY holds only for what the custodian
    uploaded (had in hand) themselves.
    """
    access = current_access()
    if access.conditions is None:
        return None
    principal = access.principal
    conditions = access.conditions
    own = bool(conditions & {Condition.OWN_UNIT, Condition.AUTHOR, Condition.IN_CUSTODY})
    return EvidenceScope(
        uploader=principal.id if own else None,
        unit=(principal.unit or None) if Condition.OWN_UNIT in conditions else None,
        office=(principal.partner or None) if Condition.SUBMITTED_TO_OFFICE in conditions else None,
    )


class EvidenceApi(evidence_pb2_grpc.EvidenceServiceServicer):
    def __init__(
        self, service: EvidenceService, traffic: Callable[[str, int], None] | None = None
    ) -> None:
        self._service = service
        # Told the bytes each stream carries: ("in", n) for uploads, ("out", n) for downloads.
        self._traffic = traffic or _uncounted

    async def UploadEvidence(
        self, request_iterator: AsyncIterator[pb.UploadEvidenceRequest], context: Context
    ) -> pb.Evidence:
        requests = aiter(request_iterator)
        start = await _first(requests)
        principal = current_principal()
        evidence = await self._service.upload(
            principal.id, start, _chunks(requests, context, self._traffic), unit=principal.unit
        )
        return evidence_to_proto(evidence)

    async def GetUpload(self, request: pb.GetUploadRequest, context: Context) -> pb.Upload:
        session = await self._service.get_upload(current_principal().id, request.name)
        return upload_to_proto(session)

    async def DownloadEvidence(
        self, request: pb.DownloadEvidenceRequest, context: Context
    ) -> AsyncIterator[pb.DownloadEvidenceResponse]:
        download = await self._service.download(
            request.name, request.offset, request.length, evidence_scope()
        )
        end = download.offset + download.length - 1
        await context.send_initial_metadata(
            (
                (SHA256_HEADER, download.evidence.sha256),
                (SIZE_HEADER, str(download.evidence.size_bytes)),
                (RANGE_HEADER, f"{download.offset}-{end}"),
            )
        )
        async for chunk in download.chunks:
            # S3 hands out what it has; gRPC messages stay at a bounded size.
            for start in range(0, len(chunk), DOWNLOAD_CHUNK_BYTES):
                yield pb.DownloadEvidenceResponse(chunk=chunk[start : start + DOWNLOAD_CHUNK_BYTES])
            self._traffic("out", len(chunk))

    async def GetEvidence(self, request: pb.GetEvidenceRequest, context: Context) -> pb.Evidence:
        return evidence_to_proto(await self._service.get(request.name, evidence_scope()))

    async def ListEvidence(
        self, request: pb.ListEvidenceRequest, context: Context
    ) -> pb.ListEvidenceResponse:
        terms = parse_filter(request.filter, _FILTER_FIELDS)
        query = EvidenceQuery(page=page(request.page_size, request.page_token), **terms)
        found = await self._service.list(query, evidence_scope())
        last = found[-1].evidence_id if len(found) == query.page.size else None
        return pb.ListEvidenceResponse(
            evidence=[evidence_to_proto(e) for e in found], next_page_token=next_token(last)
        )

    async def SetLegalHold(self, request: pb.SetLegalHoldRequest, context: Context) -> pb.Evidence:
        held = await self._service.set_legal_hold(request.name, evidence_scope())
        return evidence_to_proto(held)

    async def ReleaseLegalHold(
        self, request: pb.ReleaseLegalHoldRequest, context: Context
    ) -> pb.Evidence:
        released = await self._service.release_legal_hold(request.name, evidence_scope())
        return evidence_to_proto(released)

    async def ShareEvidence(
        self, request: pb.ShareEvidenceRequest, context: Context
    ) -> pb.ShareEvidenceResponse:
        link = await self._service.share(
            current_principal().id,
            request.name,
            request.partner,
            duration(request, "expiry"),
            request.purpose,
            evidence_scope(),
        )
        return pb.ShareEvidenceResponse(
            url=link.url, expire_time=timestamp(link.share.expire_time), share=link.share.name
        )

    async def VerifyEvidence(
        self, request: pb.VerifyEvidenceRequest, context: Context
    ) -> pb.VerifyEvidenceResponse:
        result = await self._service.verify(request.name, evidence_scope())
        return verification_to_proto(result)

    async def CheckAttachment(
        self, request: pb.CheckAttachmentRequest, context: Context
    ) -> pb.CheckAttachmentResponse:
        evidence, intact = await self._service.check_stored(request.name)
        if evidence is None:
            raise NotFound(
                "EVIDENCE_NOT_FOUND", f"no stored {request.name}", metadata={"name": request.name}
            )
        return pb.CheckAttachmentResponse(
            name=evidence.name,
            sha256=evidence.sha256,
            size_bytes=evidence.size_bytes,
            media_type=evidence.metadata.media_type,
            intact=intact,
        )

    async def DescribeEvidence(
        self, request: pb.DescribeEvidenceRequest, context: Context
    ) -> pb.EvidenceFacts:
        evidence = await self._service.get(request.name)
        return pb.EvidenceFacts(name=evidence.name, report=evidence.metadata.report)

    async def ShareAttachment(
        self, request: pb.ShareAttachmentRequest, context: Context
    ) -> pb.ShareEvidenceResponse:
        # The report service shares for the officer who submits (SERVICE role only).
        link = await self._service.share(
            request.sharer,
            request.name,
            request.partner,
            duration(request, "expiry"),
            request.purpose,
        )
        return pb.ShareEvidenceResponse(
            url=link.url, expire_time=timestamp(link.share.expire_time), share=link.share.name
        )
