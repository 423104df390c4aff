"""`justice evidence download` writes OUT only when the content is whole and hashes right
(issue 8, point 3).

The server here is a real grpc.aio server with a scripted EvidenceService: the platform's own
server never sends a wrong hash or stops short, and this test is about what the client does
when a server (or the network) does.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from justice.cli.evidence import IncompleteDownloadError, download_file
from justice.evidence.headers import RANGE_HEADER, SHA256_HEADER, SIZE_HEADER
from justice.evidence.v1 import evidence_pb2 as pb
from justice.evidence.v1 import evidence_pb2_grpc
from tests.plain_server import plain_server

CONTENT = bytes(range(256)) * 1024  # 256 KiB


@dataclass
class Script:
    """What the scripted server sends: the headers, then `chunks`, then maybe an error."""

    sha256: str = hashlib.sha256(CONTENT).hexdigest()
    chunks: list[bytes] = field(default_factory=lambda: [CONTENT[:100_000], CONTENT[100_000:]])
    cut_with: grpc.StatusCode | None = None
    refuse_with: grpc.StatusCode | None = None


class ScriptedEvidence(evidence_pb2_grpc.EvidenceServiceServicer):
    def __init__(self) -> None:
        self.script = Script()

    async def DownloadEvidence(  # type: ignore[override]
        self, request: pb.DownloadEvidenceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.DownloadEvidenceResponse]:
        if self.script.refuse_with is not None:
            await context.abort(self.script.refuse_with, "purpose required")
        length = request.length or len(CONTENT) - request.offset
        await context.send_initial_metadata(
            (
                (SHA256_HEADER, self.script.sha256),
                (SIZE_HEADER, str(len(CONTENT))),
                (RANGE_HEADER, f"{request.offset}-{request.offset + length - 1}"),
            )
        )
        for chunk in self.script.chunks:
            yield pb.DownloadEvidenceResponse(chunk=chunk)
        if self.script.cut_with is not None:
            await context.abort(self.script.cut_with, "connection lost")


@pytest.fixture(scope="module")
def servicer() -> ScriptedEvidence:
    return ScriptedEvidence()


@pytest.fixture(scope="module")
async def address(servicer: ScriptedEvidence) -> AsyncIterator[str]:
    mount = functools.partial(evidence_pb2_grpc.add_EvidenceServiceServicer_to_server, servicer)
    async with plain_server(mount) as address:
        yield address


@pytest.fixture
def script(servicer: ScriptedEvidence) -> Script:
    servicer.script = Script()
    return servicer.script


async def _download(address: str, out: Path, offset: int = 0, length: int = 0) -> Any:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = evidence_pb2_grpc.EvidenceServiceStub(channel)
        request = pb.DownloadEvidenceRequest(name="evidence/e1", offset=offset, length=length)
        return await download_file(stub, request, out)  # type: ignore[arg-type]


async def test_a_whole_download_is_renamed_into_place(
    address: str, script: Script, tmp_path: Path
) -> None:
    out = tmp_path / "evidence.bin"
    done = await _download(address, out)
    assert out.read_bytes() == CONTENT
    assert done.sha256 == script.sha256
    assert os.listdir(tmp_path) == ["evidence.bin"]


async def test_a_range_is_written_when_every_byte_arrived(
    address: str, script: Script, tmp_path: Path
) -> None:
    script.chunks = [CONTENT[10:20]]
    out = tmp_path / "range.bin"
    done = await _download(address, out, offset=10, length=10)
    assert (done.first, done.last) == (10, 19)
    assert out.read_bytes() == CONTENT[10:20]


async def test_a_hash_mismatch_leaves_no_file(address: str, script: Script, tmp_path: Path) -> None:
    script.sha256 = hashlib.sha256(b"something else").hexdigest()
    out = tmp_path / "evidence.bin"
    with pytest.raises(IncompleteDownloadError, match="sha256"):
        await _download(address, out)
    assert os.listdir(tmp_path) == []


async def test_a_stream_that_ends_short_leaves_no_file(
    address: str, script: Script, tmp_path: Path
) -> None:
    script.chunks = script.chunks[:1]
    out = tmp_path / "evidence.bin"
    with pytest.raises(IncompleteDownloadError, match="100000 of 262144 bytes"):
        await _download(address, out)
    assert os.listdir(tmp_path) == []


async def test_a_cut_connection_leaves_no_file_and_keeps_an_older_one(
    address: str, script: Script, tmp_path: Path
) -> None:
    script.chunks = script.chunks[:1]
    script.cut_with = grpc.StatusCode.UNAVAILABLE
    out = tmp_path / "evidence.bin"
    out.write_bytes(b"an earlier download")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _download(address, out)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert os.listdir(tmp_path) == ["evidence.bin"]
    assert out.read_bytes() == b"an earlier download"


async def test_a_refused_download_raises_its_status_and_leaves_no_file(
    address: str, script: Script, tmp_path: Path
) -> None:
    script.refuse_with = grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _download(address, tmp_path / "evidence.bin")
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert os.listdir(tmp_path) == []
