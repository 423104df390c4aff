"""A client's view of EvidenceService in the API tests: metadata, upload streams, the draft
report that makes a case known."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from justice.evidence.v1 import evidence_pb2 as pb
from justice.evidence.v1 import evidence_pb2_grpc
from justice.reports.v1 import reports_pb2 as rpb
from tests.builders import draft

Stub = evidence_pb2_grpc.EvidenceServiceStub
MiB = 1024 * 1024
# Evidence and its metadata are personal data: reads declare why (they are audited).
PURPOSE = (("x-justice-purpose", "evidence tests"),)
CASE = "AN.77.EV.000001/26"


def report_draft(attachments: list[rpb.Attachment]) -> rpb.Report:
    """A draft report of the evidence tests' case, citing `attachments`."""
    return draft(
        case_number=CASE,
        persons=[],
        narrative="Bodycambeelden van de vaststelling.",
        attachments=attachments,
    )


def meta(**overrides: object) -> pb.EvidenceMetadata:
    m = pb.EvidenceMetadata(
        case_number=CASE,
        media_type="video/mp4",
        original_filename="bodycam.mp4",
        capture_device="bodycam-17",
        request_id=uuid.uuid4().hex,
    )
    for key, value in overrides.items():
        setattr(m, key, value)
    return m


async def requests(
    first: pb.UploadEvidenceRequest | None, data: bytes, chunk: int = MiB
) -> AsyncIterator[pb.UploadEvidenceRequest]:
    if first is not None:
        yield first
    for start in range(0, len(data), chunk):
        yield pb.UploadEvidenceRequest(chunk=data[start : start + chunk])


async def upload(stub: Stub, data: bytes, **overrides: object) -> pb.Evidence:
    first = pb.UploadEvidenceRequest(metadata=meta(**overrides))
    return await stub.UploadEvidence(requests(first, data))
