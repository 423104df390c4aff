"""Worker processes for CPU-bound work that would hold the serving process's GIL (rendering
and signing letters, XAdES signatures): spawned on first use or `warm`, each set up once by
its initializer, and started afresh after one of them dies."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from justice.platform.errors import Unavailable

T = TypeVar("T")


def _ready() -> None:
    """A process's first task: it has run its initializer to get here."""


class WorkerProcesses:
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
        self._pool: ProcessPoolExecutor | None = None

    def _processes(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self._count,
                # Not fork: this process runs threads (database, gRPC, NATS) a fork would copy.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=self._initializer,
                initargs=self._initargs,
            )
        return self._pool

    def warm(self, ready: Callable[[], object] = _ready) -> None:
        """Start the processes now rather than at the first task: spawning them and their
        imports take seconds of CPU the first tasks would otherwise wait behind. `ready`
        is each one's first task (a function of the module the work needs imported)."""
        processes = self._processes()
        for _ in range(self._count):
            processes.submit(ready)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` in one of the processes; its exceptions are raised here."""
        pool = self._processes()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, work, *args)
        except BrokenProcessPool:
            # A process died (killed, out of memory): new ones serve the next task.
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise Unavailable(
                "WORKER_PROCESS_LOST", "a worker process stopped during the call; try again"
            ) from None

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
