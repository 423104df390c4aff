"""GetReport with mTLS, identity, authorisation and audit on, against a bare grpc.aio echo
server (mTLS too, same reply size, same client concurrency), both in their own process and
measured in the same run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from justice.devstack.supervised import free_tcp_port
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from tests.benchmarks.echo_server import METHOD
from tests.benchmarks.figures import Figure
from tests.benchmarks.platform_process import channel_credentials, served_platform

IN_FLIGHT = 32
WARM_UP = 300
CALLS = 4_000
PURPOSE = (("x-justice-purpose", "benchmark"),)


def _raw(data: bytes) -> bytes:
    return data


async def _rate(call: Callable[[], Awaitable[object]]) -> float:
    async def worker(count: int) -> None:
        for _ in range(count):
            await call()

    await asyncio.gather(*(worker(WARM_UP // IN_FLIGHT) for _ in range(IN_FLIGHT)))
    started = time.perf_counter()
    await asyncio.gather(*(worker(CALLS // IN_FLIGHT) for _ in range(IN_FLIGHT)))
    return (CALLS // IN_FLIGHT * IN_FLIGHT) / (time.perf_counter() - started)


async def _get_report_rate(port: int, pki_dir: Path) -> tuple[float, int, bytes]:
    credentials = channel_credentials(pki_dir, "officer-1001")
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
        stub = reports_pb2_grpc.ReportServiceStub(channel)
        report = pb.Report(case_number="BENCH.1", language="nl", narrative="Vaststelling. " * 40)
        report.facts_time.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
        created = await stub.CreateReport(pb.CreateReportRequest(report=report))
        request = pb.GetReportRequest(name=created.name)
        size = len((await stub.GetReport(request, metadata=PURPOSE)).SerializeToString())

        async def get() -> object:
            return await stub.GetReport(request, metadata=PURPOSE)

        return await _rate(get), size, request.SerializeToString()


async def _echo_rate(port: int, pki_dir: Path, request: bytes) -> float:
    credentials = channel_credentials(pki_dir, "officer-1001")
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
        echo = channel.unary_unary(METHOD, _raw, _raw)

        async def call() -> object:
            return await echo(request, metadata=PURPOSE)

        for _ in range(100):  # wait for the process to listen
            try:
                await echo(request, timeout=1)
                break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)
        return await _rate(call)


def main() -> list[Figure]:
    with tempfile.TemporaryDirectory() as state, served_platform(Path(state)) as port:
        pki_dir = Path(state) / "pki"
        platform, size, request = asyncio.run(_get_report_rate(port, pki_dir))
        echo_port = free_tcp_port()
        echo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.benchmarks.echo_server",
                str(pki_dir),
                str(echo_port),
                str(size),
            ]
        )
        try:
            baseline = asyncio.run(_echo_rate(echo_port, pki_dir, request))
        finally:
            echo.terminate()
            echo.wait(timeout=30)
    return [
        Figure(
            f"GetReport via gRPC (mTLS, identity, authz, audit; {size} B reply)",
            platform,
            "calls/s",
            f"bare grpc.aio echo (mTLS, {size} B reply)",
            baseline,
            goal=0.5,
        )
    ]
