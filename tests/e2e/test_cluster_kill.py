"""The clustered topology survives SIGKILL of a nats-server node, a serve replica and a relay
in the middle of SubmitReport calls (tests/cluster_env.py sets it up): every report submitted
reaches the partner once and is DELIVERED once, and every stream has three replicas.

Part of `make test` with REPORTS reports (about a minute on an idle 2-core machine);
`make bench DATABASES=postgres ONLY=cluster` runs the same with 5,000.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster_env import (
    Topology,
    assert_exactly_once,
    clustered_platform,
    prepare_database,
    run_with_kills,
)
from tests.databases import postgres_schema

REPORTS = 200


@pytest.fixture
async def topology(tmp_path: Path, postgres_url: str) -> AsyncIterator[Topology]:
    with postgres_schema(postgres_url) as url:
        await prepare_database(url, tmp_path / "pki")
        async with clustered_platform(tmp_path, url) as running:
            yield running


async def test_kills_during_submissions_lose_and_duplicate_nothing(topology: Topology) -> None:
    outcome = await run_with_kills(topology, REPORTS, within=90)
    await assert_exactly_once(topology, outcome, REPORTS)
