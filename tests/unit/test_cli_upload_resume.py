"""upload_file after a dropped stream: it asks where the upload stands and goes on from
there, and sends nothing while the server cannot say."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from justice.cli.evidence import upload_file
from justice.evidence.v1 import evidence_pb2 as pb

DATA = bytes(range(256)) * 40  # 10,240 bytes
CHUNK = 1_000
COMMITTED = 4_000


def _unavailable() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "connection reset"
    )


class _DroppingServer:
    """The first stream drops after 5,000 bytes with COMMITTED bytes kept; GetUpload fails
    `unreachable` times before it answers."""

    def __init__(self, unreachable: int) -> None:
        self.unreachable = unreachable
        self.streams: list[tuple[pb.UploadEvidenceRequest, bytes]] = []

    async def UploadEvidence(
        self, requests: AsyncIterator[pb.UploadEvidenceRequest]
    ) -> pb.Evidence:
        first = await anext(requests)
        received = b""
        async for request in requests:
            received += request.chunk
            if not self.streams and len(received) >= 5_000:
                self.streams.append((first, received))
                raise _unavailable()
        self.streams.append((first, received))
        return pb.Evidence(name="evidence/1", sha256=hashlib.sha256(DATA).hexdigest())

    async def GetUpload(self, request: pb.GetUploadRequest) -> pb.Upload:
        if self.unreachable:
            self.unreachable -= 1
            raise _unavailable()
        return pb.Upload(name=request.name, committed_offset=COMMITTED)


@pytest.mark.parametrize("unreachable", [0, 2])
async def test_a_dropped_upload_goes_on_from_the_committed_offset(
    tmp_path: Path, unreachable: int
) -> None:
    path = tmp_path / "bodycam.mp4"
    path.write_bytes(DATA)
    server = _DroppingServer(unreachable)
    resumed: list[int] = []
    evidence = await upload_file(
        server,  # type: ignore[arg-type]
        path,
        pb.EvidenceMetadata(case_number="C.1", declared_size=len(DATA)),
        on_resume=resumed.append,
        chunk_bytes=CHUNK,
    )
    assert evidence.sha256 == hashlib.sha256(DATA).hexdigest()
    # Two streams only: while GetUpload failed, nothing was sent again from offset 0.
    assert [first.WhichOneof("payload") for first, _ in server.streams] == ["metadata", "resume"]
    first, rest = server.streams[1]
    assert first.resume.offset == COMMITTED
    assert first.resume.upload == f"uploads/{server.streams[0][0].metadata.request_id}"
    assert rest == DATA[COMMITTED:]
    assert resumed == [COMMITTED]
