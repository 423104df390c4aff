"""SignReport through the API (mTLS, XAdES, the selected database) against raw
`openssl speed rsa2048` (one core), with `justice serve` in one process beside one signing
process (JUSTICE_SIGNING_PROCESSES=1), and with `--workers 2` and one each. Rounds alternate
between signing and openssl; the figure is the median.

Measured 2 Dec on this 2-core machine (SQLite, interleaved): one process signing in a
thread 177-284 signs/s, with one signing process 350-454, with two 232-281 (the two cores
are shared with the serving process and this client). `--workers 2`: 299 and 309 without
signing processes, 269 and 276 with one each; that order turned once the signing processes
were fed by the event loop instead of ProcessPoolExecutor's threads (see SIGNING_PROCESSES).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from tests.benchmarks.figures import Figure, median_of, openssl_rsa2048_signs_per_second
from tests.benchmarks.platform_process import client_channels, served_platform

ROUNDS = 3
PER_ROUND = 500
WARM_UP = 100
IN_FLIGHT = 32
# Connections the client spreads its calls over, so that every worker gets some.
CONNECTIONS = 8
GOALS = {1: 0.12, 2: 0.2}
# One signing process beside each serving process. With `--workers 2` that is four processes
# on two cores, yet on PostgreSQL it measured 402-441 signs/s against 326-359 without (2 Dec,
# signing processes fed by the event loop): a signature in a thread holds the serving
# process's GIL.
SIGNING_PROCESSES = 1


def _draft() -> pb.Report:
    report = pb.Report(
        case_number="BENCH.1",
        place="Antwerpen",
        language="nl",
        narrative="Vaststelling. " * 40,
        offences=[pb.Offence(code="43A", article="Art. 461 Sw.")],
        persons=[pb.Person(role=pb.WITNESS, given_name="A", family_name="B")],
    )
    report.facts_time.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
    return report


async def _bounded(items: Sequence[str], action: Callable[[int, str], Awaitable[object]]) -> None:
    semaphore = asyncio.Semaphore(IN_FLIGHT)

    async def one(index: int, item: str) -> None:
        async with semaphore:
            await action(index, item)

    await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))


async def _sign_rates(port: int, pki_dir: Path, openssl: list[float]) -> list[float]:
    """Signs/s per round; an openssl measurement between rounds goes into `openssl`."""
    channels = client_channels(port, pki_dir, CONNECTIONS)
    try:
        stubs = [reports_pb2_grpc.ReportServiceStub(c) for c in channels]
        names: list[str] = []

        async def create(index: int, _: str) -> None:
            request = pb.CreateReportRequest(report=_draft(), request_id=str(uuid.uuid4()))
            names.append((await stubs[index % CONNECTIONS].CreateReport(request)).name)

        await _bounded([""] * (WARM_UP + ROUNDS * PER_ROUND), create)

        async def sign(index: int, name: str) -> None:
            await stubs[index % CONNECTIONS].SignReport(pb.SignReportRequest(name=name))

        await _bounded(names[:WARM_UP], sign)  # key loading, schema, connections
        rates = []
        for round_ in range(ROUNDS):
            batch = names[WARM_UP + round_ * PER_ROUND :][:PER_ROUND]
            started = time.perf_counter()
            await _bounded(batch, sign)
            rates.append(len(batch) / (time.perf_counter() - started))
            openssl.append(await asyncio.to_thread(openssl_rsa2048_signs_per_second, 2))
        return rates
    finally:
        for channel in channels:
            await channel.close()


def _figure(workers: int) -> Figure:
    openssl: list[float] = []
    with (
        tempfile.TemporaryDirectory() as state,
        served_platform(
            Path(state),
            {"JUSTICE_SIGNING_PROCESSES": str(SIGNING_PROCESSES)},
            workers=workers,
        ) as port,
    ):
        rates = asyncio.run(_sign_rates(port, Path(state) / "pki", openssl))
    processes = (
        "1 process + 1 signing process"
        if workers == 1
        else f"--workers {workers}, {SIGNING_PROCESSES} signing process each"
    )
    return Figure(
        f"SignReport via gRPC (mTLS, XAdES B-LT; {processes})",
        median_of(rates),
        "signs/s",
        "openssl speed rsa2048 (one core)",
        median_of(openssl),
        goal=GOALS[workers],
    )


def main() -> list[Figure]:
    return [_figure(workers) for workers in (1, 2)]
