"""Two `justice serve` replicas started at the same instant on an empty PostgreSQL schema
(two pods of a fresh deployment): both migrate, enrol the dev principals and serve, and
exactly one of them leads."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path

import pytest

from justice.devstack.pki import DevPki
from justice.devstack.supervised import free_tcp_port
from tests.benchmarks.platform_process import PASSPHRASE, started_process, wait_serving
from tests.databases import postgres_schema
from tests.eventually import eventually
from tests.prometheus_scrape import scrape, value

pytestmark = pytest.mark.postgres


async def test_two_replicas_started_together_both_serve(postgres_url: str, tmp_path: Path) -> None:
    names = ("a", "b")
    for name in names:  # beforehand, or the first would be migrating while the second's forms
        DevPki(tmp_path / name / "pki", PASSPHRASE.encode()).ensure()
    with postgres_schema(postgres_url) as url, ExitStack() as replicas:
        metrics_ports = [free_tcp_port(), free_tcp_port()]
        started = [
            (
                tmp_path / name,
                replicas.enter_context(
                    started_process(
                        tmp_path / name,
                        {
                            "JUSTICE_DATABASE_URL": url,
                            "JUSTICE_METRICS_LISTEN": f"127.0.0.1:{metrics}",
                        },
                    )
                ),
            )
            for name, metrics in zip(names, metrics_ports, strict=True)
        ]
        for state_dir, (port, process) in started:
            await asyncio.to_thread(wait_serving, state_dir / "pki", port, process)

        async def one_leads() -> list[float] | None:
            leaders = [
                value(await asyncio.to_thread(scrape, port), "justice_leader") or 0.0
                for port in metrics_ports
            ]
            return leaders if sorted(leaders) == [0.0, 1.0] else None

        await eventually(one_leads, within=20, what="exactly one replica leading")
        for state_dir, _ in started:
            log = next(state_dir.glob("server*.log")).read_text()
            assert "Traceback" not in log, log
