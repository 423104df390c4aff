"""`justice exchange relay|inbound` build only the exchange's workers and the inbound
handlers: no gRPC port, no object storage, no evidence sweep."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from justice.app import build_exchange_workers
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.devstack.supervised import free_tcp_ports
from tests.eventually import eventually
from tests.exchange_env import exchange_settings, nats_with_partners


@pytest.fixture(scope="module")
def nats_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with nats_with_partners(tmp_path_factory.mktemp("nats")) as server:
        yield server


async def test_the_workers_bind_no_port_and_touch_no_storage(
    pki: DevPki, nats_auth: NatsServer, tmp_path: Path, database_url: str
) -> None:
    (dead_s3,) = free_tcp_ports(1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = exchange_settings(
            pki,
            nats_auth,
            tmp_path,
            database_url,
            # Serving gRPC would fail on this port, evidence on this S3: neither is built.
            listen=f"127.0.0.1:{taken.getsockname()[1]}",
            evidence={"s3_endpoint": f"127.0.0.1:{dead_s3}"},
        )
        process = await build_exchange_workers(settings)
        try:
            workers = process.exchange.workers
            assert workers is not None
            assert workers.relay is not None
            assert workers.consumer is not None
            # The partner answers about reports are handled here.
            assert process.exchange.dispatcher.handler("report_acknowledged") is not None

            async def linked() -> bool:
                return workers.link.connected

            assert await eventually(linked, what="the workers on NATS")
        finally:
            await process.close()
