"""`justice serve --workers 2`: two processes answer on one port, each call audited and
counted on the one metrics endpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from justice.devstack.supervised import free_tcp_port
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from tests.benchmarks.platform_process import (
    ESTABLISHED,
    channel_credentials,
    served_process,
    worker_sockets,
)
from tests.eventually import eventually
from tests.prometheus_scrape import scrape, value

CONNECTIONS = 24
PURPOSE = (("x-justice-purpose", "workers test"),)
LIST_REPORTS_OK = {
    "service": "justice.reports.v1.ReportService",
    "method": "ListReports",
    "code": "OK",
}


async def test_two_workers_answer_on_one_port(database_url: str, tmp_path: Path) -> None:
    metrics_port = free_tcp_port()
    env = {
        "JUSTICE_DATABASE_URL": database_url,
        "JUSTICE_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
    }
    with served_process(tmp_path, env, workers=2) as (port, process):
        credentials = channel_credentials(tmp_path / "pki", "officer-1001")
        # A subchannel pool per channel: each channel its own TCP connection.
        channels = [
            grpc.aio.secure_channel(
                f"localhost:{port}", credentials, [("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(CONNECTIONS)
        ]
        try:
            for channel in channels:
                stub = reports_pb2_grpc.ReportServiceStub(channel)
                answer = await stub.ListReports(
                    pb.ListReportsRequest(page_size=1), metadata=PURPOSE
                )
                assert not answer.next_page_token
            accepted = worker_sockets(process, port, ESTABLISHED)

            async def all_counted() -> float | None:
                series = await asyncio.to_thread(scrape, metrics_port)
                counted = value(series, "justice_rpcs_total", **LIST_REPORTS_OK)
                return counted if counted == CONNECTIONS else None

            # The first worker's endpoint sums the calls every worker served.
            await eventually(all_counted, within=20, what=f"{CONNECTIONS} ListReports counted")
        finally:
            for channel in channels:
                await channel.close()
    # Both workers accepted connections (all 24 on one of two: odds of 2 in 2^24). The
    # serving process's other child, multiprocessing's resource tracker, holds none.
    serving = [count for count in accepted.values() if count]
    assert len(serving) == 2, accepted
    assert sum(serving) == CONNECTIONS
    # Every call has its record, whichever worker's audit writer committed it.
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            recorded = await connection.scalar(
                text("SELECT count(*) FROM audit_record WHERE method = 'ListReports'")
            )
    finally:
        await engine.dispose()
    assert recorded == CONNECTIONS
