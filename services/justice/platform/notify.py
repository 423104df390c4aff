"""Cross-process wake-ups on PostgreSQL: NOTIFY in a writing transaction, LISTEN elsewhere.

A commit in this process wakes its own workers through `Database.on_commit`; a row written
by another process (a second `justice serve`, `justice exchange relay`, an import job) would
otherwise wait for the next poll. PostgreSQL delivers a NOTIFY issued inside a transaction
when, and only if, that transaction commits, and folds repeats within one transaction into
one. SQLite has no such channel: there the listeners' polls remain the bound.

Channels are per database, not per schema: processes on other schemas of the same database
only cause a spurious wake-up, never a missed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel.ext.asyncio.session import AsyncSession

log = logging.getLogger(__name__)

_NOTIFIED = "justice.notify.sent"


def supported(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


async def notify(session: AsyncSession, channel: str) -> None:
    """Wake `channel`'s listeners when the session's transaction commits (PostgreSQL only).

    One NOTIFY per transaction and channel: later calls in the same transaction cost nothing.
    """
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        return
    transaction = session.sync_session.get_transaction()
    sent: dict[str, object] = session.info.setdefault(_NOTIFIED, {})
    if transaction is None or sent.get(channel) is transaction:
        return
    await connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})
    sent[channel] = transaction


class Listener:
    """LISTENs on one channel and calls `wake` for each notification, reconnecting as needed.

    It also calls `wake` right after each (re)connection: a commit made while it was not
    listening is then picked up as well.
    """

    def __init__(self, url: str, channel: str, *, retry_seconds: float = 1.0) -> None:
        # The plain libpq URL of the SQLAlchemy one (same host, database and options).
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._channel = channel
        self._retry = retry_seconds
        self.listening = asyncio.Event()

    async def run(self, wake: Callable[[], None], stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as connection:
                    channel = sql.Identifier(self._channel)
                    await connection.execute(sql.SQL("LISTEN {}").format(channel))
                    self.listening.set()
                    wake()
                    while not stop.is_set():
                        # A bounded wait, so that `stop` is seen without cancelling.
                        async for _ in connection.notifies(timeout=1.0):
                            wake()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as error:
                log.warning("listen %s: %s; reconnecting", self._channel, type(error).__name__)
            self.listening.clear()
            if not stop.is_set():
                await asyncio.sleep(self._retry)


class Announced:
    """Whether what was read from some tables may be shown again without reading them: the
    tables' changes are announced on `channel` (a trigger NOTIFYs on every write, whoever
    writes) and, for this process's own commits, told to `changed` right after them.

    `epoch` moves with every announcement and every (re)connection of the listener, so a
    value read during one epoch is still current while the epoch holds, up to the delivery
    of another process's notification (PostgreSQL sends it at commit). `live` only while
    listening: a dropped connection may have missed announcements, so nothing read then
    may be held.
    """

    def __init__(self, url: str, channel: str) -> None:
        self._listener = Listener(url, channel)
        self.epoch = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def live(self) -> bool:
        return self._listener.listening.is_set()

    def changed(self) -> None:
        self.epoch += 1

    def start(self) -> None:
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(
                self._listener.run(self.changed, self._stop), name="announced"
            )

    async def listening(self) -> None:
        await self._listener.listening.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._stop.set()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            self._listener.listening.clear()
