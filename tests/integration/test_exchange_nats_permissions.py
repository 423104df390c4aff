"""The generated nats-server authorization, on a real server: partner A can use its own
inbox and outbox, and cannot read B's inbox or publish as B."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NatsClient

from justice.devstack.nats import NatsServer
from justice.exchange import bus
from justice.exchange.bus import INBOX_STREAM, OUTBOX_STREAM, partner_consumer
from tests.exchange_env import nats_with_partners, partner_credentials, platform_url

A, B = "prosecutor-antwerp", "court-brussels"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with nats_with_partners(tmp_path_factory.mktemp("nats-perm"), (A, B)) as running:
        yield running


@pytest.fixture(scope="module")
async def platform(server: NatsServer) -> AsyncIterator[NatsClient]:
    nc = await nats.connect(platform_url(server))
    js = nc.jetstream()
    await bus.ensure_streams(js)
    for partner in (A, B):
        await bus.ensure_partner_consumer(js, partner)
    yield nc
    await nc.close()


async def _as(server: NatsServer, partner: str, errors: list[str]) -> NatsClient:
    credentials = partner_credentials(server, partner)

    async def record(error: Exception) -> None:
        errors.append(str(error))

    return await nats.connect(
        server.url,
        user=credentials.user,
        password=credentials.password,
        inbox_prefix=credentials.inbox_prefix,
        error_cb=record,
        allow_reconnect=False,
    )


async def test_wrong_password_is_refused(server: NatsServer) -> None:
    with pytest.raises(nats.errors.Error):
        await nats.connect(server.url, user=f"partner-{A}", password="guess", allow_reconnect=False)


async def test_partner_uses_its_own_inbox_and_outbox(
    server: NatsServer, platform: NatsClient
) -> None:
    js = platform.jetstream()
    await js.publish(f"justice.v1.partner.{A}.inbox.report_submitted", b"for A")
    errors: list[str] = []
    nc = await _as(server, A, errors)
    try:
        own = nc.jetstream()
        sub = await own.pull_subscribe_bind(
            durable=partner_consumer(A),
            stream=INBOX_STREAM,
            inbox_prefix=f"{partner_credentials(server, A).inbox_prefix}.".encode(),
        )
        [msg] = await sub.fetch(1, timeout=5)
        assert msg.data == b"for A"
        await msg.ack()
        ack = await own.publish(f"justice.v1.partner.{A}.outbox.receipt", b"from A")
        assert ack.stream == OUTBOX_STREAM
    finally:
        await nc.close()
    assert errors == []


async def test_partner_cannot_read_another_partners_inbox(
    server: NatsServer, platform: NatsClient
) -> None:
    js = platform.jetstream()
    await js.publish(f"justice.v1.partner.{B}.inbox.report_submitted", b"for B only")
    errors: list[str] = []
    nc = await _as(server, A, errors)
    try:
        # Plain subscription to B's inbox subject.
        sniff = await nc.subscribe(f"justice.v1.partner.{B}.inbox.>")
        # Pulling through B's durable consumer.
        stolen = nc.jetstream()
        sub = await stolen.pull_subscribe_bind(
            durable=partner_consumer(B),
            stream=INBOX_STREAM,
            inbox_prefix=f"{partner_credentials(server, A).inbox_prefix}.".encode(),
        )
        with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError)):
            await sub.fetch(1, timeout=1.5)
        await js.publish(f"justice.v1.partner.{B}.inbox.report_submitted", b"again for B")
        with pytest.raises(nats.errors.TimeoutError):
            await sniff.next_msg(timeout=1.0)
    finally:
        await nc.close()
    joined = "\n".join(errors).lower()
    assert "permissions violation for subscription" in joined
    assert "permissions violation for publish" in joined
    # B's message is still waiting for B.
    info = await platform.jetstream().consumer_info(INBOX_STREAM, partner_consumer(B))
    assert info.num_pending + info.num_ack_pending >= 2


async def test_partner_cannot_publish_as_another_partner(
    server: NatsServer, platform: NatsClient
) -> None:
    js = platform.jetstream()
    before = (await js.stream_info(OUTBOX_STREAM)).state.messages
    errors: list[str] = []
    nc = await _as(server, A, errors)
    try:
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await nc.jetstream().publish(
                f"justice.v1.partner.{B}.outbox.report_acknowledged", b"forged", timeout=1.5
            )
        # Nor may it touch the JetStream API beyond its own consumer.
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await nc.request(f"$JS.API.STREAM.PURGE.{INBOX_STREAM}", b"", timeout=1.0)
    finally:
        await nc.close()
    assert (await js.stream_info(OUTBOX_STREAM)).state.messages == before
    assert "permissions violation for publish" in "\n".join(errors).lower()
