"""The platform served from its own process (`justice serve`), as in production.

Benchmarks drive it from this process, so the client does not steal the server's core.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from justice.devstack.pki import DevPki
from justice.devstack.supervised import free_tcp_port

PASSPHRASE = "bench-passphrase"


@contextmanager
def served_platform(state_dir: Path, env: Mapping[str, str] | None = None) -> Iterator[int]:
    """Start `justice serve` on a free port with the dev PKI under state_dir; yield the port."""
    pki = DevPki(state_dir / "pki", PASSPHRASE.encode())
    pki.ensure()
    port = free_tcp_port()
    environment = {
        **os.environ,
        "JUSTICE_STATE_DIR": str(state_dir),
        "JUSTICE_LISTEN": f"127.0.0.1:{port}",
        "JUSTICE_KEY_PASSPHRASE": PASSPHRASE,
        **(env or {}),
    }
    log = (state_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "justice", "serve"],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_serving(pki, port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def channel_credentials(pki_dir: Path, principal: str) -> grpc.ChannelCredentials:
    pki = DevPki(pki_dir, PASSPHRASE.encode())
    cert, key = pki.client_paths(principal)
    return grpc.ssl_channel_credentials(
        pki.ca_path.read_bytes(), key.read_bytes(), cert.read_bytes()
    )


def _wait_serving(pki: DevPki, port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    credentials = channel_credentials(pki.root, "officer-1001")
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"justice serve exited with {process.returncode}")
        with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
            try:
                response = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.2)
    raise TimeoutError("justice serve did not become healthy")
