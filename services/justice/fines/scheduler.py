"""The deadline scheduler: owner lookups that timed out, letters to identified owners that
a stopped process left unwritten, every escalation the deadlines owe (time bar, reminder,
payment order, final, transfer, closing), and the erasure of personal data after
retention, on an interval.

The clock is the service's (injected), so tests advance time and call `tick` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from justice.fines.service import FineService
from justice.platform.errors import JusticeError

log = logging.getLogger(__name__)


class DeadlineScheduler:
    def __init__(self, service: FineService, interval_seconds: float) -> None:
        self._service = service
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> int:
        """One pass: returns how many lookups and fines moved or were erased."""
        moved = await self._service.retry_lookups() + await self._service.notice_all_identified()
        moved += await self._service.escalate()
        return moved + await self._service.erase_expired()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="fines-deadlines")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except JusticeError as error:
                # A concurrent change (ABORTED) is retried on the next pass.
                log.warning("fines deadlines: %s", error.reason)
            except OSError as error:
                log.warning("fines deadlines: database unavailable: %s", error)
            await asyncio.sleep(self._interval)
