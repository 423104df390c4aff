"""Article 5 letters written off the inbound path.

An owner reply commits the identified fine and hands it here (as committed: the letter's
write checks its revision, so no read is repeated); the letter (PDF render,
PAdES and XAdES signatures) is then written in a task of its own, at most `concurrency` at
once, so replies keep flowing while letters are rendered and several letters are rendered
side by side (the rendering and signing run in threads). Nothing here is durable: a letter
that a stopping process leaves unwritten is written by the scheduler's sweep
(FineService.notice_all_identified), since its fine stays OWNER_IDENTIFIED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from justice.platform.errors import JusticeError

log = logging.getLogger(__name__)

T = TypeVar("T")


class NoticeQueue(Generic[T]):
    """`submit(fine_id, fine)` writes the letter of `fine` (the state the owner reply
    committed) in a task of its own."""

    def __init__(self, write: Callable[[T], Awaitable[object]], concurrency: int) -> None:
        self._write = write
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def submit(self, fine_id: str, fine: T) -> None:
        if self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._run(fine_id, fine), name="fine-notice")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, fine_id: str, fine: T) -> None:
        async with self._slots:
            try:
                await self._write(fine)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Left OWNER_IDENTIFIED: the scheduler's sweep tries again. No message text
                # in the log, it may quote the letter.
                reason = error.reason if isinstance(error, JusticeError) else type(error).__name__
                log.warning("fine notice for fines/%s not written: %s", fine_id, reason)

    async def drain(self) -> None:
        """Waits for every letter submitted so far."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
