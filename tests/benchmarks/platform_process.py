"""The platform served from its own process (`justice serve`), as in production.

Benchmarks drive it from this process, so the client does not steal the server's core.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from justice.devstack.pki import DevPki
from justice.devstack.supervised import free_tcp_port
from justice.devstack.testing import POSTGRES_URL
from tests.databases import postgres_schema

PASSPHRASE = "bench-passphrase"


# Which database `make bench` serves from: "sqlite" (the state dir's file) or "postgres"
# (a private schema at 127.0.0.1:5432, dropped afterwards). Set by tests.benchmarks.__main__.
DATABASE_VARIABLE = "JUSTICE_BENCH_DATABASE"


def selected_database() -> str:
    return os.environ.get(DATABASE_VARIABLE, "sqlite")


@contextmanager
def bench_database(state_dir: Path) -> Iterator[str]:
    """The database URL this benchmark run serves from."""
    if selected_database() == "postgres":
        with postgres_schema(POSTGRES_URL) as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{(state_dir / 'justice.db').resolve()}"


@contextmanager
def served_platform(
    state_dir: Path, env: Mapping[str, str] | None = None, *, workers: int = 1
) -> Iterator[int]:
    """Start `justice serve` on a free port with the dev PKI under state_dir; yield the port."""
    with served_process(state_dir, env, workers=workers) as (port, _):
        yield port


@contextmanager
def served_process(
    state_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    workers: int = 1,
    services: Sequence[str] = (),
    port: int | None = None,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`justice serve --workers N [--service S ...]` on the bench database (unless env
    names one), on `port` or a free one; yield its port and process (with N > 1, the
    workers are that process's children). Each selection logs to a file of its own."""
    with started_process(state_dir, env, workers=workers, services=services, port=port) as (
        port,
        process,
    ):
        wait_serving(state_dir / "pki", port, process)
        if workers > 1:
            _wait_workers(process, port, workers)
        yield port, process


@contextmanager
def started_process(
    state_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    workers: int = 1,
    services: Sequence[str] = (),
    port: int | None = None,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """As served_process, but yielded as soon as it is started (not yet serving)."""
    pki = DevPki(state_dir / "pki", PASSPHRASE.encode())
    pki.ensure()
    port = port or free_tcp_port()
    selection = [arg for name in services for arg in ("--service", name)]
    with bench_database(state_dir) as database_url:
        environment = {
            **os.environ,
            "JUSTICE_STATE_DIR": str(state_dir),
            "JUSTICE_LISTEN": f"127.0.0.1:{port}",
            "JUSTICE_KEY_PASSPHRASE": PASSPHRASE,
            "JUSTICE_DATABASE_URL": database_url,
            **(env or {}),
        }
        log = (state_dir / f"server{''.join(f'-{s}' for s in services)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "justice", "serve", "--workers", str(workers), *selection],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield port, process
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


def client_channels(
    port: int, pki_dir: Path, count: int, principal: str = "officer-1001"
) -> list[grpc.aio.Channel]:
    """`count` channels, each its own TCP connection (a subchannel pool per channel), so
    the kernel spreads them over the workers sharing the port."""
    credentials = channel_credentials(pki_dir, principal)
    return [
        grpc.aio.secure_channel(
            f"localhost:{port}", credentials, [("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(count)
    ]


LISTEN, ESTABLISHED = "0A", "01"


def worker_sockets(process: subprocess.Popen[bytes], port: int, state: str) -> dict[int, int]:
    """How many TCP sockets on `port` in `state` each worker (child of `process`) holds,
    from /proc: which process accepted which connection."""
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                sockets.add(f"socket:[{fields[9]}]")
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    held = {}
    for child in map(int, children):
        fds = Path(f"/proc/{child}/fd")
        links = []
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                links.append(os.readlink(fd))
        held[child] = sum(link in sockets for link in links)
    return held


def _wait_workers(process: subprocess.Popen[bytes], port: int, workers: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listening = worker_sockets(process, port, LISTEN)
        if sum(1 for count in listening.values() if count) >= workers:
            return
        time.sleep(0.2)
    raise TimeoutError(f"not all {workers} workers listen")


def wait_serving(pki_dir: Path, port: int, process: subprocess.Popen[bytes]) -> None:
    """Until `process` answers SERVING on `port` (its dev PKI under `pki_dir`)."""
    deadline = time.monotonic() + 60
    credentials = channel_credentials(pki_dir, "officer-1001")
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
