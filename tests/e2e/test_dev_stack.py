"""The embedded stack driven as a user drives it: `justice run`, `justice demo`, xmlsec1, Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from justice.devstack.pki import DevPki
from justice.devstack.supervised import free_tcp_ports


@dataclass
class Stack:
    state: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    port: int

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "justice", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def children(self) -> list[int]:
        # Every thread's children: nats-server and weed are started from a worker thread.
        tasks = Path(f"/proc/{self.process.pid}/task")
        return [int(pid) for t in tasks.glob("*/children") for pid in t.read_text().split()]

    def pki(self) -> DevPki:
        return DevPki(self.state / "pki", self.env["JUSTICE_KEY_PASSPHRASE"].encode())


def _channel(stack: Stack) -> grpc.Channel:
    cert, key = stack.pki().client_paths("officer-1001")
    credentials = grpc.ssl_channel_credentials(
        stack.pki().ca_path.read_bytes(), key.read_bytes(), cert.read_bytes()
    )
    return grpc.secure_channel(f"localhost:{stack.port}", credentials)


def _start(state: Path, env: dict[str, str], port: int) -> Stack:
    log = (state.parent / f"run-{time.monotonic_ns()}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "justice", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    stack = Stack(state, env, process, port)
    try:
        _wait_healthy(stack, log.name)
    except BaseException:
        # SIGINT, not SIGKILL: `justice run` then stops nats-server and weed too.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        raise
    return stack


def _wait_healthy(stack: Stack, log: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert stack.process.poll() is None, f"justice run exited: {log}"
        # The client key is among the last PKI files written.
        if stack.pki().client_paths("officer-1001")[1].exists():
            try:
                with _channel(stack) as channel:
                    status = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                if status.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
        time.sleep(0.3)
    raise TimeoutError("justice run did not become healthy")


def _nats_admits_anonymous(port: int) -> bool:
    async def attempt() -> bool:
        try:
            client = await nats.connect(
                f"nats://127.0.0.1:{port}", allow_reconnect=False, connect_timeout=2
            )
        except (nats.errors.Error, OSError):
            return False
        await client.close()
        return True

    return asyncio.run(attempt())


def _interrupt(stack: Stack) -> list[int]:
    children = stack.children()
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(timeout=60) == 0
    return children


@pytest.fixture(scope="module")
def environment(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, str], int]:
    root = tmp_path_factory.mktemp("stack")
    port, nats_port, s3_port = free_tcp_ports(3)
    env = {
        **os.environ,
        "JUSTICE_STATE_DIR": str(root / "state"),
        "JUSTICE_LISTEN": f"127.0.0.1:{port}",
        "JUSTICE_DEV_NATS_PORT": str(nats_port),
        "JUSTICE_DEV_S3_PORT": str(s3_port),
        "JUSTICE_KEY_PASSPHRASE": "e2e-passphrase",
    }
    env.pop("JUSTICE_DATABASE_URL", None)
    return root / "state", env, port


def test_run_demo_verify_interrupt_and_rerun(
    environment: tuple[Path, dict[str, str], int], tmp_path: Path
) -> None:
    state, env, port = environment
    stack = _start(state, env, port)
    try:
        with _channel(stack) as channel:
            services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert "justice.reports.v1.ReportService" in services
        assert "grpc.health.v1.Health" in services

        out = tmp_path / "demo"
        demo = stack.cli("demo", "--out", str(out))
        assert demo.returncode == 0, demo.stdout + demo.stderr
        # The prosecutor simulator, on the partner SDK, answered over NATS, as its own user:
        # the embedded nats-server admits no one without credentials.
        assert "the report is ACKNOWLEDGED" in demo.stdout
        assert not _nats_admits_anonymous(int(env["JUSTICE_DEV_NATS_PORT"]))
        versions = sorted(out.glob("report-*-v*.xml"))
        assert [p.name[-6:] for p in versions] == ["v1.xml", "v2.xml"]
        commands = [
            line
            for line in (out / "VERIFY.txt").read_text().splitlines()
            if line.startswith("xmlsec1")
        ]
        assert len(commands) == 2
        for command in commands:
            result = subprocess.run(shlex.split(command), cwd=out, capture_output=True, check=False)
            assert result.returncode == 0, result.stderr

        verified = stack.cli("verify", str(versions[1]), "--ca", str(out / "ca.pem"))
        assert verified.returncode == 0, verified.stdout
        assert "VALID" in verified.stdout
        tampered = tmp_path / "tampered.xml"
        tampered.write_bytes(versions[1].read_bytes().replace(b"rood zadel", b"rood zadeL"))
        refused = stack.cli("verify", str(tampered), "--ca", str(out / "ca.pem"))
        assert refused.returncode == 1
        assert "INVALID" in refused.stdout

        name = "reports/" + versions[0].name.split("-")[1]
        draft = stack.cli("report", "amend", name)
        assert draft.returncode == 0, draft.stdout + draft.stderr
        foreign = stack.cli("--as", "officer-1002", "report", "sign", name)
        assert foreign.returncode == 1
        assert "PERMISSION_DENIED" in foreign.stdout
    finally:
        children = _interrupt(stack)
    assert len(children) >= 2  # nats-server and weed
    for pid in children:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )

    again = _start(state, env, port)
    try:
        kept = again.cli("--purpose", "e2e check", "report", "get", f"{name}@2")
        assert kept.returncode == 0, kept.stdout + kept.stderr
        assert '"state": "ACKNOWLEDGED"' in kept.stdout
    finally:
        _interrupt(again)
