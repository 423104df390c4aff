"""SignReport through the API (mTLS, SQLite, XAdES) against raw `openssl speed rsa2048`."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from tests.benchmarks.figures import Figure, openssl_rsa2048_signs_per_second
from tests.benchmarks.platform_process import channel_credentials, served_platform

REPORTS = 1_500
IN_FLIGHT = 32


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


async def _bounded(calls: list[object], action: object) -> None:
    semaphore = asyncio.Semaphore(IN_FLIGHT)

    async def one(item: object) -> None:
        async with semaphore:
            await action(item)  # type: ignore[operator]

    await asyncio.gather(*(one(i) for i in calls))


async def _sign_rate(port: int, pki_dir: Path) -> float:
    credentials = channel_credentials(pki_dir, "officer-1001")
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
        stub = reports_pb2_grpc.ReportServiceStub(channel)
        names: list[str] = []

        async def create(_: object) -> None:
            request = pb.CreateReportRequest(report=_draft(), request_id=str(uuid.uuid4()))
            names.append((await stub.CreateReport(request)).name)

        await _bounded(list(range(REPORTS)), create)

        async def sign(name: object) -> None:
            await stub.SignReport(pb.SignReportRequest(name=str(name)))

        await _bounded(names[:100], sign)  # warm-up: key loading, schema, connections
        started = time.perf_counter()
        await _bounded(names[100:], sign)
        return (len(names) - 100) / (time.perf_counter() - started)


def main() -> list[Figure]:
    openssl = openssl_rsa2048_signs_per_second()
    with tempfile.TemporaryDirectory() as state, served_platform(Path(state)) as port:
        rate = asyncio.run(_sign_rate(port, Path(state) / "pki"))
    return [
        Figure(
            "SignReport via gRPC (mTLS, XAdES B-LT, SQLite)",
            rate,
            "signs/s",
            "openssl speed rsa2048",
            openssl,
            goal=0.25,
        )
    ]
