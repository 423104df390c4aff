"""Leadership: which one process of a deployment runs the singleton background work.

Replicas of `justice serve` (pods, processes) share one database; the work that must run
once per deployment (the exchange relay, the audit log's followers, the sweeps and
schedulers) runs in the process that holds a session-level advisory lock on PostgreSQL, on
a connection of its own. The others try again every `retry_seconds`; when the holder dies its
connection closes, the lock is released and one of them takes over. A holder that loses its
connection (checked every `check_seconds`) stops its work at once: the lock may already be
someone else's.

On SQLite (one host, the embedded default) there is no lock: the candidate leads, which is
the first `--workers` process (justice.app.Worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

# Starts the singleton work, pushing what stops it onto the stack.
Lead = Callable[[AsyncExitStack], Awaitable[None]]


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for `name` (xor-ed with the schema in SQL: advisory
    locks are per database, and each schema is its own deployment)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


_TRY = "SELECT pg_try_advisory_lock(%(key)s # hashtext(current_schema()))"


class Leadership:
    def __init__(
        self,
        url: str,
        name: str,
        lead: Lead,
        *,
        retry_seconds: float = 3.0,
        check_seconds: float = 2.0,
        changed: Callable[[bool], None] | None = None,
    ) -> None:
        parsed = make_url(url)
        self._dsn = (
            None
            if parsed.get_backend_name() == "sqlite"
            else parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        )
        self._key = lock_key(name)
        self._lead = lead
        self._retry = retry_seconds
        self._check = check_seconds
        self._changed = changed
        self._task: asyncio.Task[None] | None = None
        self.leading = False

    async def start(self) -> None:
        """Try to lead once now (so a lone process has its work running when this returns),
        then keep holding or trying in the background."""
        try:
            term = await self._attempt()
        except Exception as error:
            log.warning("leadership: not taken (%s)", type(error).__name__)
            term = None
        self._task = asyncio.create_task(self._run(term), name="leadership")

    async def close(self) -> None:
        """Stop the singleton work (if led here) and give the lock up."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, term: _Term | None) -> None:
        while True:
            if term is not None:
                try:
                    await self._hold(term.connection)
                except Exception as error:  # the connection, so perhaps the lock, is lost
                    log.warning("leadership: lost (%s)", type(error).__name__)
                finally:
                    await term.end()
                term = None
            await asyncio.sleep(self._retry)
            try:
                term = await self._attempt()
            except Exception as error:  # the database is away, or the work failed to start
                log.warning("leadership: not taken (%s)", type(error).__name__)

    async def _attempt(self) -> _Term | None:
        """The lock and the work started, or None when another process holds the lock."""
        connection = None
        if self._dsn is not None:
            # Closing this connection (or the process dying) releases the lock.
            connection = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        term = _Term(connection, AsyncExitStack(), self._set)
        try:
            if connection is not None:
                cursor = await connection.execute(_TRY, {"key": self._key})
                row = await cursor.fetchone()
                if row is None or not row[0]:
                    await term.end()
                    return None
            log.info("leadership: this process runs the singleton work")
            self._set(True)
            await self._lead(term.work)
        except BaseException:
            await term.end()
            raise
        return term

    async def _hold(self, connection: psycopg.AsyncConnection[Any] | None) -> None:
        """Until the connection fails (it raises then); forever without one (SQLite)."""
        if connection is None:
            await asyncio.Event().wait()
        while connection is not None:
            await asyncio.sleep(self._check)
            async with asyncio.timeout(self._check):
                await connection.execute("SELECT 1")

    def _set(self, leading: bool) -> None:
        if self.leading and not leading:
            log.info("leadership: the singleton work stopped here")
        self.leading = leading
        if self._changed is not None:
            self._changed(leading)


@dataclass
class _Term:
    """One term as leader: the connection holding the lock and the work started."""

    connection: psycopg.AsyncConnection[Any] | None
    work: AsyncExitStack
    set_leading: Callable[[bool], None]

    async def end(self) -> None:
        try:
            await self.work.aclose()
        finally:
            self.set_leading(False)
            if self.connection is not None:
                await self.connection.close()
