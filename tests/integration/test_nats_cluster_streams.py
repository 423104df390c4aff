"""On a JetStream cluster of three (loopback), JUSTICE_NATS_STREAM_REPLICAS=3 gives the
partner streams three replicas, and a restart of the platform's link keeps them at three."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import nats.js.errors
import pytest

from justice.devstack.nats import NatsServer
from justice.exchange.bus import INBOX_STREAM, OUTBOX_STREAM
from justice.exchange.workers import NatsLink
from justice.platform.bus import Bus, NatsCredentials
from tests.cluster_env import nats_cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[NatsServer]]:
    with nats_cluster(tmp_path) as nodes:
        yield nodes


async def _replicas(link: NatsLink) -> dict[str, int]:
    js = await link.jetstream()
    found = {}
    for stream in (INBOX_STREAM, OUTBOX_STREAM):
        info = await js.stream_info(stream)
        assert info.cluster is not None
        found[stream] = 1 + len(info.cluster.replicas or [])
        assert info.config.num_replicas == 3
    return found


async def test_partner_streams_get_three_replicas(cluster: list[NatsServer]) -> None:
    async def partners() -> list[str]:
        return ["prosecutor-antwerp"]

    for attempt in range(2):  # the second link finds the streams and updates them in place
        bus = Bus(NatsCredentials(cluster[attempt].url), stream_replicas=3)
        link = NatsLink(bus, partners)
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                try:
                    replicas = await _replicas(link)
                    break
                except (nats.js.errors.Error, AssertionError, TimeoutError):
                    # The cluster elects its meta leader and places the replicas first.
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await bus.close()
                    await asyncio.sleep(0.5)
            assert replicas == {INBOX_STREAM: 3, OUTBOX_STREAM: 3}
        finally:
            await bus.close()
