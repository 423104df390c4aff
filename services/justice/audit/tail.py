"""Consumers that follow the audit log by sequence: the stream publisher and the detector.

The database is the source of truth. Each consumer keeps a cursor (the last sequence it
handled) in `audit_cursor`; it reads the records after it and hands them to its handler, which
moves the cursor with a compare-and-set:
- the detector stores its alerts and baselines in the transaction that moves the cursor, so
  a batch counts exactly once, whatever fails or restarts;
- the publisher moves it after the stream acknowledged the batch (`then_checkpoint`); a batch
  sent again after a crash is dropped by the stream's deduplication.
A handler that fails (NATS down) is retried from the same place later, so nothing is lost and
no RPC ever waits on it. Two replicas may follow the same log: the compare-and-set lets one
of them move the cursor, and the other reads it again and goes on from there.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from justice.audit.model import AuditRecord
from justice.platform import ports

log = logging.getLogger(__name__)


class Checkpoints(Protocol):
    async def advance_cursor(self, name: str, expected: int, to: int) -> bool: ...


class CursorRecords(Checkpoints, Protocol):
    async def after(self, sequence: int, limit: int, until: int = 0) -> list[AuditRecord]: ...
    async def cursor(self, name: str) -> int: ...


class TailTransaction(ports.UnitOfWork, Protocol):
    @property
    def records(self) -> CursorRecords: ...


class CursorMoved(Exception):
    """Another consumer of the same name moved the cursor first: read it again."""


@dataclass(frozen=True)
class Batch:
    tail: str
    # The cursor the records follow, and the records, in sequence order (never empty).
    cursor: int
    records: list[AuditRecord]

    @property
    def end(self) -> int:
        return self.records[-1].sequence


async def checkpoint(records: Checkpoints, batch: Batch) -> None:
    """Move the batch's tail cursor past it, within the caller's transaction."""
    if not await records.advance_cursor(batch.tail, batch.cursor, batch.end):
        raise CursorMoved(batch.tail)


# Handles a batch and moves the cursor (with `checkpoint`) in a transaction it commits.
Handler = Callable[[Batch], Awaitable[object]]


def then_checkpoint(
    uow: Callable[[], TailTransaction], sink: Callable[[list[AuditRecord]], Awaitable[None]]
) -> Handler:
    """For a sink that deduplicates by itself: hand it the records, then move the cursor."""

    async def handle(batch: Batch) -> None:
        await sink(batch.records)
        async with uow() as tx:
            await checkpoint(tx.records, batch)
            await tx.commit()

    return handle


class LogTail:
    def __init__(
        self,
        name: str,
        uow: Callable[[], TailTransaction],
        handle: Handler,
        *,
        batch: int = 500,
        poll_seconds: float = 1.0,
        retry_seconds: float = 2.0,
        settle_seconds: float = 0.0,
    ) -> None:
        self.name = name
        self._uow = uow
        self._handle = handle
        self._batch = batch
        self._poll = poll_seconds
        self._retry = retry_seconds
        self._settle = settle_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Records this process committed and the tail has not handled yet, so a batch of
        # them is not read back from the database (two tails re-reading every record cost a
        # tenth of the server under GetReport load). In increasing sequence order: one
        # writer per process commits its batches in turn. Bounded: beyond it, or across
        # another replica's records, the database is read as before.
        self._recent: collections.deque[AuditRecord] = collections.deque(maxlen=4 * batch)

    def notify(self, records: Sequence[AuditRecord] = ()) -> None:
        """New records were committed here (handed over as they were committed); other
        replicas' records are found by polling."""
        self._recent.extend(records)
        self._wake.set()

    def _committed_here(self, cursor: int) -> list[AuditRecord]:
        """The records right after `cursor`, as far as they were committed here in a row."""
        while self._recent and self._recent[0].sequence <= cursor:
            self._recent.popleft()  # handled already
        records: list[AuditRecord] = []
        for record in self._recent:
            if len(records) == self._batch or record.sequence != cursor + 1 + len(records):
                break
            records.append(record)
        return records

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"audit-tail-{self.name}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        cursor: int | None = None
        while True:
            try:
                if cursor is None:
                    async with self._uow() as uow:
                        cursor = await uow.records.cursor(self.name)
                cursor = await self.step(cursor)
            except asyncio.CancelledError:
                raise
            except CursorMoved:
                cursor = None
            except Exception as error:
                log.warning("audit %s is behind: %s", self.name, type(error).__name__)
                cursor = None  # whatever was not committed is handled again from the cursor
                await asyncio.sleep(self._retry)

    async def step(self, cursor: int) -> int:
        """Handle the next batch (or wait for one); return the new cursor."""
        self._wake.clear()  # before reading, so a commit during the read is not missed
        records = self._committed_here(cursor)
        if not records:
            async with self._uow() as uow:
                records = await uow.records.after(cursor, self._batch)
        if not records:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
            # races its timeout, and close() would then wait for this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
            return cursor
        batch = Batch(self.name, cursor, records)
        await self._handle(batch)
        if len(records) < self._batch:
            # Caught up: let records gather before the next transaction, instead of one
            # per writer commit (under load, a commit every few milliseconds).
            await asyncio.sleep(self._settle)
        return batch.end
