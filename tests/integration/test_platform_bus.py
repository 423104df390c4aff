"""platform/bus.py against a real nats-server with authorization: one policy for every
connection (fail fast and say why on the first attempt, reconnect forever after it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from justice.devstack.nats import NatsServer, NatsTls
from justice.devstack.pki import DevPki
from justice.devstack.supervised import free_tcp_ports
from justice.exchange.nats_config import PLATFORM_USER, derive_password
from justice.platform.bus import (
    NATS_UNAVAILABLE,
    Bus,
    BusRefused,
    BusUnavailable,
    NatsCredentials,
    connect,
    platform_credentials,
)
from justice.platform.config import Settings
from tests.eventually import eventually
from tests.exchange_env import SECRET, nats_with_partners, platform_url


@pytest.fixture(scope="module")
def nats_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with nats_with_partners(tmp_path_factory.mktemp("nats")) as server:
        yield server


async def test_credentials_in_the_url_or_apart_both_connect(nats_auth: NatsServer) -> None:
    password = derive_password(SECRET, PLATFORM_USER)
    for credentials in (
        NatsCredentials(platform_url(nats_auth)),
        NatsCredentials(nats_auth.url, PLATFORM_USER, password),
    ):
        client = await connect(credentials, name="test")
        try:
            assert client.is_connected
        finally:
            await client.close()


async def test_refused_and_unreachable_fail_fast_and_differently(nats_auth: NatsServer) -> None:
    started = time.monotonic()
    with pytest.raises(BusRefused):
        await connect(NatsCredentials(nats_auth.url, PLATFORM_USER, "guess"), name="test")
    (closed_port,) = free_tcp_ports(1)
    with pytest.raises(BusUnavailable):
        await connect(NatsCredentials(f"nats://127.0.0.1:{closed_port}"), name="test")
    # nats-py alone retries a first attempt forever; ours answers at once.
    assert time.monotonic() - started < 3.0


async def test_the_bus_survives_a_server_restart(nats_auth: NatsServer) -> None:
    bus = Bus(NatsCredentials(platform_url(nats_auth)), name="test")
    try:
        js = await bus.jetstream()
        client = await bus.client()
        nats_auth.kill()
        nats_auth.restart()
        # Reconnected by the client itself: the same connection and context work again.
        assert await eventually(_answers(js), within=20.0, what="JetStream answers again")
        assert await bus.client() is client
        assert await bus.jetstream() is js
    finally:
        await bus.close()


def _answers(js: JetStreamContext) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        try:
            async with asyncio.timeout(1.0):
                await js.account_info()
        except NATS_UNAVAILABLE:
            return False
        return True

    return probe


async def test_tls_from_the_settings_with_a_private_ca_and_a_client_certificate(
    pki: DevPki, tmp_path: Path
) -> None:
    tls = NatsTls(pki.server_cert_path, pki.server_key_path, pki.ca_path, verify=True)
    cert, key = pki.client_paths("justice-server")
    with NatsServer(tmp_path / "nats", tls=tls) as server:
        settings = Settings(
            state_dir=tmp_path / "state",
            nats_url=server.url,
            nats_tls_ca=pki.ca_path,
            nats_tls_cert=cert,
            nats_tls_key=key,
        )
        client = await connect(platform_credentials(settings), name="test")
        try:
            assert client.is_connected
        finally:
            await client.close()
        # Without the private CA the server's certificate is not trusted: a configuration
        # error, said at once.
        untrusted = settings.model_copy(update={"nats_tls_ca": None})
        with pytest.raises(BusRefused):
            await connect(platform_credentials(untrusted), name="test")
