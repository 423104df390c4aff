"""GetReport with mTLS, identity, authorisation, the purpose gate and audit on, against a bare
grpc.aio echo server (mTLS too, same reply size, same client), each in its own processes:
`justice serve` against one echo process, and `justice serve --workers 2` against two echo
processes sharing a port. Rounds alternate between the two servers; the figure is the median.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from justice.devstack.supervised import free_tcp_port
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from tests.benchmarks.echo_server import METHOD
from tests.benchmarks.figures import Figure, median_of
from tests.benchmarks.platform_process import client_channels, served_platform

IN_FLIGHT = 32
# Connections the client spreads its calls over, so that every worker gets some.
CONNECTIONS = 8
WARM_UP = 320
CALLS = 3_200
ROUNDS = 3
PURPOSE = (("x-justice-purpose", "benchmark"),)
# The goals: one process each, and two workers against two bare processes.
GOALS = {1: 0.3, 2: 0.35}

Call = Callable[[], Awaitable[object]]


def _raw(data: bytes) -> bytes:
    return data


async def _rate(calls: list[Call]) -> float:
    async def worker(call: Call, count: int) -> None:
        for _ in range(count):
            await call()

    def run(total: int) -> Awaitable[list[None]]:
        share = total // IN_FLIGHT
        return asyncio.gather(*(worker(calls[i % len(calls)], share) for i in range(IN_FLIGHT)))

    await run(WARM_UP)
    started = time.perf_counter()
    await run(CALLS)
    return (CALLS // IN_FLIGHT * IN_FLIGHT) / (time.perf_counter() - started)


async def _report(port: int, pki_dir: Path) -> tuple[str, int, bytes]:
    """A report to read: its name, the size of its GetReport answer, the request bytes."""
    (channel,) = client_channels(port, pki_dir, 1)
    async with channel:
        stub = reports_pb2_grpc.ReportServiceStub(channel)
        report = pb.Report(case_number="BENCH.1", language="nl", narrative="Vaststelling. " * 40)
        report.facts_time.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
        created = await stub.CreateReport(pb.CreateReportRequest(report=report))
        request = pb.GetReportRequest(name=created.name)
        size = len((await stub.GetReport(request, metadata=PURPOSE)).SerializeToString())
        return created.name, size, request.SerializeToString()


async def _get_report_rate(port: int, pki_dir: Path, name: str) -> float:
    channels = client_channels(port, pki_dir, CONNECTIONS)
    request = pb.GetReportRequest(name=name)
    try:
        stubs = [reports_pb2_grpc.ReportServiceStub(c) for c in channels]
        return await _rate(
            [lambda stub=stub: stub.GetReport(request, metadata=PURPOSE) for stub in stubs]
        )
    finally:
        for channel in channels:
            await channel.close()


async def _echo_rate(port: int, pki_dir: Path, request: bytes) -> float:
    channels = client_channels(port, pki_dir, CONNECTIONS)
    try:
        echoes = [c.unary_unary(METHOD, _raw, _raw) for c in channels]
        for _ in range(100):  # wait for the processes to listen
            try:
                await echoes[0](request, timeout=1)
                break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)
        return await _rate([lambda echo=echo: echo(request, metadata=PURPOSE) for echo in echoes])
    finally:
        for channel in channels:
            await channel.close()


@contextmanager
def echo_servers(pki_dir: Path, reply_bytes: int, processes: int) -> Iterator[int]:
    """The bare server in `processes` processes on one free port; yield the port."""
    port = free_tcp_port()
    arguments = [str(pki_dir), str(port), str(reply_bytes), str(processes)]
    echo = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks.echo_server", *arguments],
        start_new_session=True,  # its own process group: its children stop with it
    )
    try:
        yield port
    finally:
        os.killpg(echo.pid, signal.SIGTERM)
        echo.wait(timeout=30)


def _figure(workers: int) -> Figure:
    with (
        tempfile.TemporaryDirectory() as state,
        served_platform(Path(state), workers=workers) as port,
    ):
        pki_dir = Path(state) / "pki"
        name, size, request = asyncio.run(_report(port, pki_dir))
        platform: list[float] = []
        bare: list[float] = []
        with echo_servers(pki_dir, size, workers) as echo_port:
            for _ in range(ROUNDS):  # interleaved: the machine's noise hits both alike
                platform.append(asyncio.run(_get_report_rate(port, pki_dir, name)))
                bare.append(asyncio.run(_echo_rate(echo_port, pki_dir, request)))
    processes = "1 process" if workers == 1 else f"--workers {workers}"
    return Figure(
        f"GetReport (mTLS, identity, authz, purpose, audit; {size} B; {processes})",
        median_of(platform),
        "calls/s",
        f"bare grpc.aio echo, {workers} process(es)",
        median_of(bare),
        goal=GOALS[workers],
    )


def main() -> list[Figure]:
    return [_figure(workers) for workers in (1, 2)]
