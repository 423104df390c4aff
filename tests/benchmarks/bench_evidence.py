"""UploadEvidence / DownloadEvidence of a 1 GiB file against the minio SDK straight to S3.

The platform runs as its own process (`justice serve`) on a SeaweedFS started here; the
baselines are minio-SDK put_object / get_object of the same file to the same server in
the same run, alternating with the uploads round by round. The server's resident memory is
sampled from /proc during each upload, after one small warm-up upload.

On a 2-core machine this is CPU-bound: SeaweedFS alone takes most of both cores at the
direct put's rate, so every CPU-second the gRPC path adds (TLS, framing, hashing, the SDK's
own payload hash) shows in the ratio.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc

from justice.cli.evidence import sha256_file, upload_file
from justice.devstack.seaweed import SeaweedS3
from justice.evidence.v1 import evidence_pb2 as pb
from justice.evidence.v1 import evidence_pb2_grpc
from justice.reports.v1 import reports_pb2 as rpb
from justice.reports.v1 import reports_pb2_grpc
from tests.benchmarks.figures import Figure
from tests.benchmarks.platform_process import channel_credentials, served_platform

SIZE = 1024**3
MiB = 1024 * 1024
CASE = "BENCH.EVIDENCE.1"


def _write_file(path: Path) -> None:
    with path.open("wb") as handle:
        for _ in range(SIZE // (16 * MiB)):
            handle.write(os.urandom(16 * MiB))


def _server_pid() -> int:
    """The `justice serve` child of this process."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = stat.rsplit(")", 1)[1].split()[1]
        if ppid == me and b"justice\x00serve" in cmdline:
            return int(entry.name)
    raise RuntimeError("justice serve process not found")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class _RssSampler:
    """Peak VmRSS of a process, sampled every 20 ms on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start_kib = _rss_kib(pid)
        self.peak_kib = self.start_kib
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kib = max(self.peak_kib, _rss_kib(self.pid))

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.start_kib) / 1024


ROUNDS = 2


def _restamp(path: Path, round_no: int) -> str:
    """New content for each round (else the second upload is only hashed, never stored)."""
    with path.open("r+b") as handle:
        handle.write(round_no.to_bytes(8, "big") + os.urandom(8))
    return sha256_file(path)


async def _through_grpc(
    port: int, pki_dir: Path, path: Path, s3: SeaweedS3, bucket: str
) -> tuple[list[float], list[float], list[float], float]:
    """Per round: a direct put and an UploadEvidence of the same file, alternating so that
    drift (other load, a filling disk) hits both alike. Then one download of each.

    Returns put and upload seconds per round, the server's peak RSS growth (MiB) per upload,
    and the download seconds."""
    credentials = channel_credentials(pki_dir, "officer-1001")
    options = [("grpc.max_receive_message_length", 8 * MiB)]
    client = s3.client()
    puts: list[float] = []
    uploads: list[float] = []
    growth: list[float] = []
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials, options) as channel:
        reports = reports_pb2_grpc.ReportServiceStub(channel)
        draft = rpb.Report(case_number=CASE, language="nl", narrative="bench")
        await reports.CreateReport(
            rpb.CreateReportRequest(report=draft, request_id=uuid.uuid4().hex)
        )
        stub = evidence_pb2_grpc.EvidenceServiceStub(channel)

        def meta(size: int, sha: str) -> pb.EvidenceMetadata:
            return pb.EvidenceMetadata(
                case_number=CASE,
                media_type="video/mp4",
                original_filename="bench.mp4",
                declared_size=size,
                declared_sha256=sha,
            )

        # One small upload first: the figure is what an upload costs, not the server's
        # first-use warm-up (S3 connections, worker threads, statement caches).
        warm = path.with_name("warm.bin")
        warm.write_bytes(os.urandom(MiB))
        await upload_file(stub, warm, meta(MiB, sha256_file(warm)))
        evidence = None
        for round_no in range(ROUNDS):
            _restamp(path, 2 * round_no)
            started = time.perf_counter()
            await asyncio.to_thread(
                client.fput_object, bucket, f"direct-{round_no}", str(path), part_size=16 * MiB
            )
            puts.append(time.perf_counter() - started)
            sha = _restamp(path, 2 * round_no + 1)
            with _RssSampler(_server_pid()) as rss:
                started = time.perf_counter()
                evidence = await upload_file(stub, path, meta(SIZE, sha))
                uploads.append(time.perf_counter() - started)
            growth.append(rss.growth_mib)
            assert evidence.sha256 == sha
        assert evidence is not None

        started = time.perf_counter()
        digest = hashlib.sha256()
        request = pb.DownloadEvidenceRequest(name=evidence.name)
        # Evidence is personal data: reads carry a purpose (audited).
        purpose = (("x-justice-purpose", "benchmark"),)
        async for response in stub.DownloadEvidence(request, metadata=purpose):
            digest.update(response.chunk)
        download_seconds = time.perf_counter() - started
        assert digest.hexdigest() == evidence.sha256
        return puts, uploads, growth, download_seconds


def _direct_get(s3: SeaweedS3, bucket: str) -> float:
    client = s3.client()
    started = time.perf_counter()
    response = client.get_object(bucket, f"direct-{ROUNDS - 1}")
    digest = hashlib.sha256()
    try:
        for block in response.stream(MiB):
            digest.update(block)
    finally:
        response.close()
        response.release_conn()
    return time.perf_counter() - started


def main() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-evidence-") as tmp:
        root = Path(tmp)
        path = root / "evidence.bin"
        _write_file(path)
        s3 = SeaweedS3(
            root / "s3",
            access_key=f"bench-{secrets.token_hex(4)}",
            secret_key=secrets.token_urlsafe(24),
            volume_size_limit_mb=1024,
        )
        s3.start()
        try:
            s3.wait_ready()
            bucket = f"bench-direct-{secrets.token_hex(4)}"
            s3.client().make_bucket(bucket, object_lock=True)
            env = {
                "JUSTICE_EVIDENCE__S3_ENDPOINT": s3.endpoint,
                "JUSTICE_EVIDENCE__S3_ACCESS_KEY": s3.access_key,
                "JUSTICE_EVIDENCE__S3_SECRET_KEY": s3.secret_key,
                "JUSTICE_EVIDENCE__SWEEP_INTERVAL_SECONDS": "0",
            }
            with served_platform(root / "state", env) as port:
                puts, uploads, growth, download = asyncio.run(
                    _through_grpc(port, root / "state" / "pki", path, s3, bucket)
                )
            direct_get = _direct_get(s3, bucket)
        finally:
            s3.stop()
    mb = SIZE / 1e6
    return [
        Figure(
            f"UploadEvidence 1 GiB (gRPC, hashed, locked; median of {ROUNDS})",
            mb / statistics.median(uploads),
            "MB/s",
            "minio put_object",
            mb / statistics.median(puts),
            goal=0.9,
        ),
        Figure(
            "server peak RSS growth during upload (worst round)",
            max(growth),
            "MiB",
            "64 MiB budget",
            64.0,
            goal=1.0,
            lower_is_better=True,
        ),
        Figure(
            "DownloadEvidence 1 GiB (gRPC)",
            mb / download,
            "MB/s",
            "minio get_object",
            mb / direct_get,
        ),
    ]


if __name__ == "__main__":
    for figure in main():
        print(figure, f"ratio {figure.ratio:.3f}")
