"""Worker processes for CPU-bound work that would hold the serving process's GIL (rendering
and signing letters, XAdES signatures): spawned on first use or `warm`, each set up once by
its initializer, and started afresh after one of them dies.

Each process is fed over a socket of its own by the event loop: a task is pickled and
written from the loop, and its result read when the socket is readable. concurrent.futures'
ProcessPoolExecutor passes every task and result through two threads of its own (a manager
and a queue feeder); under SignReport load their wake-ups took 13 % of the serving process's
CPU on the 2-core benchmark machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import pickle
import signal
import socket
import struct
from collections import deque
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar, cast

from justice.platform.errors import Unavailable

T = TypeVar("T")

log = logging.getLogger(__name__)

# A frame: its length, then a pickle. Tasks are (work, args); results (ok, value).
_LENGTH = struct.Struct("!Q")


def _ready() -> None:
    """A process's first task: it has run its initializer to get here."""


def _frame(message: object) -> bytes:
    payload = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(payload)) + payload


def _receive(connection: socket.socket) -> object | None:
    """The next frame's message in the worker process; None once the server has closed."""
    header = _receive_exactly(connection, _LENGTH.size)
    if header is None:
        return None
    (size,) = _LENGTH.unpack(header)
    payload = _receive_exactly(connection, size)
    # The serving process's end of a socketpair: nobody else writes to it.
    return None if payload is None else pickle.loads(payload)  # noqa: S301


def _receive_exactly(connection: socket.socket, size: int) -> bytearray | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    while view:
        received = connection.recv_into(view)
        if not received:
            return None
        view = view[received:]
    return buffer


def _serve(
    connection: socket.socket,
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
) -> None:
    """A worker process: its initializer, then one task after another until the server closes
    its end (or dies: the socket ends then too). Ctrl-C is the server's to act on: it closes
    the socket."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)
    while (task := _receive(connection)) is not None:
        work, args = cast(tuple[Callable[..., object], tuple[Any, ...]], task)
        try:
            outcome: tuple[bool, object] = (True, work(*args))
        except Exception as error:  # the caller's to raise
            outcome = (False, error)
        try:
            frame = _frame(outcome)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            frame = _frame((False, RuntimeError(f"result could not be sent back: {error!r}")))
        connection.sendall(frame)


class _Worker:
    """One process, its socket, and the calls waiting on it in the order they were sent
    (a warm-up's None among them: nobody waits for its result)."""

    def __init__(
        self,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
    ) -> None:
        ours, theirs = socket.socketpair()
        # Not fork: the serving process runs threads (database, gRPC, NATS) a fork would copy.
        self.process: BaseProcess = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(theirs, initializer, initargs), daemon=True
        )
        self.process.start()
        theirs.close()  # the process's end: its death then ends the socket
        self.socket = ours
        self.waiting: deque[asyncio.Future[tuple[bool, Any]] | None] = deque()
        self.calls = 0  # calls made and not yet answered, whether sent yet or not
        self._connected: asyncio.Future[asyncio.StreamWriter] | None = None
        self._reading: asyncio.Task[None] | None = None

    def send_now(self, message: object) -> None:
        """Written before the event loop reads this socket (warm-up); blocks while it writes."""
        self.waiting.append(None)
        self.socket.sendall(_frame(message))

    async def writer(self, lost: Callable[[_Worker], None]) -> asyncio.StreamWriter:
        """The socket's writer, connected to the event loop by the first call; the calls that
        arrive meanwhile wait for the same connection (two would split the results)."""
        if self._connected is None:
            self._connected = asyncio.ensure_future(self._connect(lost))
        # Shielded: a cancelled first caller must not cancel the others' connection.
        return await asyncio.shield(self._connected)

    async def _connect(self, lost: Callable[[_Worker], None]) -> asyncio.StreamWriter:
        reader, writer = await asyncio.open_unix_connection(sock=self.socket)
        self._reading = asyncio.create_task(self._read(reader, lost))
        return writer

    async def _read(self, reader: asyncio.StreamReader, lost: Callable[[_Worker], None]) -> None:
        try:
            while True:
                (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
                frame = await reader.readexactly(size)
                waiter = self.waiting.popleft()
                if waiter is None or waiter.done():  # a warm-up, or cancelled meanwhile
                    continue
                try:
                    # Our own child's end of a socketpair: nobody else writes to it.
                    waiter.set_result(pickle.loads(frame))  # noqa: S301
                except Exception as error:  # e.g. an exception class that cannot be rebuilt
                    waiter.set_exception(error)
        except (asyncio.IncompleteReadError, OSError):
            lost(self)

    def fail_waiting(self) -> None:
        while self.waiting:
            waiter = self.waiting.popleft()
            if waiter is not None and not waiter.done():
                waiter.set_exception(
                    Unavailable(
                        "WORKER_PROCESS_LOST",
                        "a worker process stopped during the call; try again",
                    )
                )

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
        if self._connected is not None:
            with contextlib.suppress(OSError):
                writer = await self._connected
                writer.close()
                await writer.wait_closed()
        else:
            self.socket.close()
        self.fail_waiting()
        # The process ends at its socket's end; one that does not in time is killed.
        await asyncio.to_thread(self.process.join, 5)
        if self.process.is_alive():
            self.process.kill()
            await asyncio.to_thread(self.process.join)


class WorkerProcesses:
    """Processes used from one event loop."""

    def __init__(
        self,
        count: int,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        """`initializer` and the work must be module-level functions: the spawn start method
        pickles them by name."""
        if count < 1:
            raise ValueError("at least one worker process")
        self._count = count
        self._initializer = initializer
        self._initargs = initargs
        self._workers: list[_Worker] = []
        self._ending: set[asyncio.Task[None]] = set()

    def _started(self) -> list[_Worker]:
        while len(self._workers) < self._count:
            self._workers.append(_Worker(self._initializer, self._initargs))
        return self._workers

    def warm(self, ready: Callable[[], object] = _ready) -> None:
        """Start the processes now rather than at the first task: spawning them and their
        imports take seconds of CPU the first tasks would otherwise wait behind. `ready`
        is each one's first task (a function of the module the work needs imported)."""
        for worker in self._started():
            worker.send_now((ready, ()))

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` in the least busy process; its exceptions are raised here. A process
        that dies fails the calls it had (WORKER_PROCESS_LOST); a new one takes its place."""
        worker = min(self._started(), key=lambda w: w.calls)
        if not worker.process.is_alive():  # died while idle: it costs no call
            self._lost(worker)
            return await self.run(work, *args)
        worker.calls += 1
        try:
            writer = await worker.writer(self._lost)
            outcome: asyncio.Future[tuple[bool, Any]] = asyncio.get_running_loop().create_future()
            worker.waiting.append(outcome)
            writer.write(_frame((work, args)))
            ok, value = await outcome
        finally:
            worker.calls -= 1
        if ok:
            return cast(T, value)
        raise value

    def _lost(self, worker: _Worker) -> None:
        if worker not in self._workers:  # seen dead before (idle check, then its reader)
            return
        log.warning("worker process %s ended", worker.process.pid)
        self._workers.remove(worker)
        worker.fail_waiting()
        ending = asyncio.get_running_loop().create_task(worker.close())
        self._ending.add(ending)
        ending.add_done_callback(self._ending.discard)

    async def close(self) -> None:
        workers, self._workers = self._workers, []
        await asyncio.gather(*(worker.close() for worker in workers), *self._ending)
