"""The clustered kill test at the issue's size: 5,000 SubmitReport calls through two serve
replicas while a nats-server node, a replica and a relay are SIGKILLed (tests/cluster_env.py;
tests/e2e/test_cluster_kill.py runs the same with 200 in `make test`). PostgreSQL only:
several processes share the outbox."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from justice.devstack.testing import POSTGRES_URL
from tests.benchmarks.figures import Figure
from tests.benchmarks.platform_process import selected_database
from tests.cluster_env import (
    assert_exactly_once,
    clustered_platform,
    prepare_database,
    run_with_kills,
)
from tests.databases import postgres_schema

REPORTS = 5_000


async def _run(state: Path, url: str) -> list[Figure]:
    await prepare_database(url, state / "pki")
    async with clustered_platform(state, url) as topology:
        outcome = await run_with_kills(topology, REPORTS, within=600)
        await assert_exactly_once(topology, outcome, REPORTS)
    submitted = len(outcome.ok | outcome.unanswered)
    print(
        f"{len(outcome.ok)} answered OK, {len(outcome.unanswered)} done unanswered, "
        f"{outcome.retries} retried calls, {outcome.seconds:.0f} s to the last receipt "
        f"({submitted / outcome.seconds:.0f} reports/s)"
    )
    return [
        Figure(
            "clustered kill: reports DELIVERED exactly once",
            submitted,
            "reports",
            "reports submitted",
            REPORTS,
            goal=1.0,
        ),
    ]


def main() -> list[Figure]:
    if selected_database() != "postgres":
        return []
    with tempfile.TemporaryDirectory() as tmp, postgres_schema(POSTGRES_URL) as url:
        return asyncio.run(_run(Path(tmp), url))
