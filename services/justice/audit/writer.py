"""Group commit of audit records: one writer task chains and commits whole batches.

Each RPC hands in its entry and waits until the batch holding it is committed, so no
response leaves before its record is durable, while one transaction carries hundreds of
records. A batch is one hop to the writer's own driver thread (DriverThread): the head read,
the chaining and the insert run there in one transaction, instead of an aiosqlite hop or an
ORM round on the event loop per statement. Several processes may write one log (`justice
serve --workers N`): each batch chains onto the head it reads under the lock that serialises
writers (PostgreSQL: a transaction-scoped advisory lock; SQLite: its write lock, taken
first); should a sequence still collide, the primary key refuses it and the batch is chained
again onto the new head.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence

from justice.audit.model import AuditEntry, AuditRecord
from justice.audit.store import append_chained
from justice.platform.db import CONFLICTS, Database, DriverThread
from justice.platform.errors import Unavailable

log = logging.getLogger(__name__)

_Pending = tuple[AuditEntry, asyncio.Future[AuditRecord]]
_CONFLICT_RETRIES = 50
# Serialises audit batches of all replicas on PostgreSQL (any constant both sides agree on).
_LOCK = 0x4A55_4155_4449_54


class AuditWriter:
    def __init__(
        self,
        database: Database,
        *,
        max_batch: int = 1_000,
        on_commit: Callable[[Sequence[AuditRecord]], None] | None = None,
    ) -> None:
        self._database = database
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._driver = DriverThread(database.url, "audit-writer")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self._driver.close()

    async def append(self, entry: AuditEntry) -> AuditRecord:
        """Returns once the record is committed; raises Unavailable when it cannot be."""
        self.start()
        done: asyncio.Future[AuditRecord] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((entry, done))
        # Shielded: a cancelled RPC must not take its already-queued record out of the batch.
        return await asyncio.shield(done)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[_Pending]) -> None:
        entries = [entry for entry, _ in batch]
        error: BaseException | None = None
        for _ in range(_CONFLICT_RETRIES):
            try:
                records = await self._driver.run(
                    lambda connection: append_chained(connection, entries, _LOCK)
                )
            except CONFLICTS as conflict:
                error = conflict  # another writer moved the head
                await asyncio.sleep(random.uniform(0, 0.01))  # noqa: S311 - jitter, not secrets
                continue
            except Exception as failure:
                error = failure
                break
            for (_, done), record in zip(batch, records, strict=True):
                if not done.done():
                    done.set_result(record)
            if self._on_commit is not None:
                self._on_commit(records)
            return
        log.error("audit records could not be committed: %s", type(error).__name__)
        for _, done in batch:
            if not done.done():
                done.set_exception(
                    Unavailable("AUDIT_UNAVAILABLE", "the audit log cannot record this call")
                )
