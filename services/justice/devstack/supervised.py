"""A child server process that the dev stack starts, waits for, and stops.

Each server runs in its own session (process group), so a Ctrl-C in the terminal
reaches only the Python parent, which then stops its children in order instead of
racing them. Signals only ever go to the child's own PID, never to a group.
"""

from __future__ import annotations

import abc
import atexit
import collections
import socket
import subprocess
import time
from collections.abc import Collection
from pathlib import Path
from typing import Self

__all__ = [
    "ProcessNotReadyError",
    "SupervisedProcess",
    "free_tcp_port",
    "free_tcp_ports",
    "tcp_port_open",
]

LOOPBACK = "127.0.0.1"

# Safety net for an interpreter that exits without stopping its servers. Strong
# references on purpose: a forgotten server object must still be killed at exit.
_live: set[SupervisedProcess] = set()
_atexit_registered = False


def _kill_leftovers() -> None:
    for proc in list(_live):
        proc.kill()


def free_tcp_ports(count: int, host: str = LOOPBACK, avoid: Collection[int] = ()) -> list[int]:
    """Return `count` distinct TCP ports that were free a moment ago, none of `avoid`.

    All sockets stay bound until every port is picked, otherwise the kernel may
    hand out the same port twice. Another process may take a port before our
    server binds it; SupervisedProcess.wait_ready then starts it on fresh ones.
    """
    socks: list[socket.socket] = []
    try:
        for _ in range(count + len(avoid)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((host, 0))
        ports = [int(sock.getsockname()[1]) for sock in socks]
        return [port for port in ports if port not in avoid][:count]
    finally:
        for sock in socks:
            sock.close()


def free_tcp_port(host: str = LOOPBACK) -> int:
    """One port from `free_tcp_ports`; use that function when a server needs several."""
    return free_tcp_ports(1, host)[0]


def tcp_port_open(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class ProcessNotReadyError(RuntimeError):
    """The server exited or did not become ready in time; the message ends with its log tail."""


class SupervisedProcess(abc.ABC):
    """Base class: subclasses say how to build the command line and how to probe readiness.

    Ports are chosen in the subclass constructor and kept for the object's whole
    life, so `restart()` brings the server back on the same address and data dir.
    """

    #: Short name used for the log file and in error messages.
    name: str = "server"

    def __init__(self, workdir: Path, *, stop_grace: float = 10.0) -> None:
        # Absolute: the child runs with this as its working directory, so a relative path
        # handed to it would point one level too deep.
        self.workdir = Path(workdir).absolute()
        self.stop_grace = stop_grace
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0

    # -- for subclasses ---------------------------------------------------
    @abc.abstractmethod
    def command(self) -> list[str]:
        """The full argv of the server."""

    @abc.abstractmethod
    def probe_ready(self) -> bool:
        """One cheap readiness probe; must not raise for 'not yet'."""

    def prepare(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Write config files before each start (hook)."""

    #: Log text meaning a port was taken between choosing it and binding it.
    port_taken_markers: tuple[str, ...] = ("address already in use",)

    def choose_ports(self) -> bool:
        """Pick fresh free ports for those the caller left to us (hook); False if none."""
        return False

    # -- public API -------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server without waiting for it; see `wait_ready`."""
        global _atexit_registered
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        argv = self.command()
        with self.log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            log.write(f"--- starting {argv[0]} at {stamp}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._started_at = time.monotonic()
        _live.add(self)
        if not _atexit_registered:
            atexit.register(_kill_leftovers)
            _atexit_registered = True

    def wait_ready(self, timeout: float = 15.0, port_retries: int = 3) -> float:
        """Block until `probe_ready()` passes; return seconds since `start()`.

        A free port can be taken by someone else (any outgoing connection) before the
        server binds it; then the server is started again on fresh ports, a few times.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None:
                raise ProcessNotReadyError(f"{self.name} was never started")
            code = self._proc.poll()
            if code is not None:
                if port_retries > 0 and self._port_was_taken() and self.choose_ports():
                    port_retries -= 1
                    self.start()
                    continue
                raise ProcessNotReadyError(
                    f"{self.name} exited with code {code}\n{self.log_tail()}"
                )
            if self.probe_ready():
                return time.monotonic() - self._started_at
            if time.monotonic() > deadline:
                raise ProcessNotReadyError(
                    f"{self.name} not ready after {timeout:.1f}s (pid {self._proc.pid})\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM, then SIGKILL if the server has not exited after `grace` seconds."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            # Popen.terminate/kill refuse to signal an already-reaped PID, so a
            # recycled PID can never be hit.
            proc.terminate()
            try:
                proc.wait(self.stop_grace if grace is None else grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _live.discard(self)

    def kill(self) -> None:
        """SIGKILL now and reap (for fault-injection tests)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _live.discard(self)

    def restart(self, timeout: float = 15.0) -> float:
        """Stop (gracefully, if still running) and start again on the same ports and data dir."""
        self.stop()
        self.start()
        return self.wait_ready(timeout)

    def _port_was_taken(self) -> bool:
        # Only what this start wrote: the log keeps earlier starts above it.
        latest = self.log_tail(200).rpartition("--- starting ")[2]
        return any(marker in latest for marker in self.port_taken_markers)

    def log_tail(self, lines: int = 30) -> str:
        try:
            with self.log_path.open("rb") as f:
                tail = collections.deque(f, maxlen=lines)
        except OSError:
            return "(no log)"
        return b"".join(tail).decode("utf-8", "replace")

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
