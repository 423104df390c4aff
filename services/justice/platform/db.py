"""The database: one async engine per process, versioned migrations with alembic.

The same code runs on SQLite (embedded default) and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from types import TracebackType
from typing import Any, Self

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.types import DateTime, TypeDecorator
from sqlalchemy.util import await_
from sqlalchemy.util.concurrency import in_greenlet
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sync_url(url: str) -> str:
    """The URL alembic uses; psycopg serves both modes, SQLite needs its sync driver."""
    parsed = make_url(url)
    if parsed.drivername == "sqlite+aiosqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    return url


# How long a writer waits for SQLite's write lock, in this process's queue or (another
# process holding it) in SQLite's busy handler, before "database is locked".
_SQLITE_LOCK_SECONDS = 10.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # The busy timeout only covers other processes now (SqliteWriter queues this one's).
    cursor.execute(f"PRAGMA busy_timeout={int(_SQLITE_LOCK_SECONDS * 1000)}")
    # WAL lets readers run during a write. The file keeps the mode, so it is set once:
    # setting it again takes a lock without the busy handler, and a pooled connection opened
    # while another one wrote failed with "database is locked". A fresh connection reports
    # the file's mode only once it has read the file (schema_version reads its header).
    cursor.execute("PRAGMA schema_version")
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# The statements before which Python's sqlite3 opens a write transaction (its legacy rule):
# reads before a transaction's first write run outside it and hold no lock.
_SQLITE_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC")
_HOLDS_WRITE = "justice.db.holds_write"


class SqliteWriter:
    """One writer at a time per SQLite database in this process.

    SQLite has one write lock. Concurrent writers through aiosqlite held it across their
    thread hops while the others slept in SQLite's busy handler (1 -> 100 ms back-off): at
    100 msg/s the relay's mark-published transaction reached 733 ms and p99 SubmitReport ->
    partner receipt 0.8-1.7 s. Here a transaction takes an in-process lock at its first write
    and gives it back when its connection returns to the pool (after commit or rollback), so
    writers queue on the event loop and SQLite never sees two; reads never take it. Writes
    outside SQLAlchemy (a plain driver connection) do not queue here.
    """

    def __init__(self, timeout: float = _SQLITE_LOCK_SECONDS) -> None:
        self._timeout = timeout
        # One lock per event loop: a Database may outlive the loop that first used it.
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            self._locks = {k: v for k, v in self._locks.items() if not k.is_closed()}
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def _acquire(self) -> asyncio.Lock:
        lock = self._lock()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that races
            # its timeout, and a worker being stopped would then never stop.
            async with asyncio.timeout(self._timeout):
                await lock.acquire()
        except TimeoutError:
            # What SQLite's busy handler would have said after the same wait.
            raise sqlite3.OperationalError("database is locked") from None
        return lock

    def before_execute(
        self, conn: Any, _cursor: Any, statement: str, *_args: Any, **_kw: Any
    ) -> None:
        info = conn.info
        if _HOLDS_WRITE in info or not statement.lstrip()[:6].upper().startswith(_SQLITE_WRITES):
            return
        if not in_greenlet():
            return  # synchronous use of the engine (scripts): nothing to queue behind
        info[_HOLDS_WRITE] = await_(self._acquire())

    def checkin(self, _dbapi_connection: Any, record: Any) -> None:
        lock: asyncio.Lock | None = record.info.pop(_HOLDS_WRITE, None)
        if lock is not None:
            lock.release()


async def execute(session: AsyncSession, statement: Any) -> Any:
    """Run a Core statement on the session's own connection, inside its transaction.

    Repositories use plain rows rather than entities: the ORM's loading and bulk-update
    paths cost more than the queries themselves.
    """
    connection = await session.connection()
    return await connection.execute(statement)


class Transaction:
    """A unit of work over one session; subclasses attach their repositories in `bind`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    def bind(self, session: AsyncSession) -> None:
        """Attach repositories to the session."""

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self.bind(self.session)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Closing without commit rolls back: a failed request leaves nothing half-written.
        await self.session.close()

    async def commit(self) -> None:
        await self.session.commit()


# One writer per SQLite file in the process, however many Database objects open it (the
# exchange's relay has a pool of its own).
_SQLITE_WRITERS: dict[str, SqliteWriter] = {}


def _sqlite_writer(url: str) -> SqliteWriter:
    path = make_url(url).database or ""
    if not path or path == ":memory:":
        return SqliteWriter()
    return _SQLITE_WRITERS.setdefault(os.path.realpath(path), SqliteWriter())


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        backend = make_url(url).get_backend_name()
        options: dict[str, Any] = {}
        if backend == "postgresql":
            # Recycling instead of pre-ping: a ping per checkout doubles the round trips.
            options = {"pool_size": pool_size, "max_overflow": pool_size, "pool_recycle": 1800}
        self.engine: AsyncEngine = create_async_engine(url, **options)
        self.writer: SqliteWriter | None = None
        if backend == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            self.writer = _sqlite_writer(url)
            event.listen(
                self.engine.sync_engine, "before_cursor_execute", self.writer.before_execute
            )
            event.listen(self.engine.sync_engine.pool, "checkin", self.writer.checkin)
        # A session class of its own (sqlmodel's, which AsyncSession.exec needs), so that
        # commit hooks stay with this database.
        self._session_class: type[Session] = type("DatabaseSession", (Session,), {})
        self.sessions = async_sessionmaker(
            self.engine,
            class_=AsyncSession,
            sync_session_class=self._session_class,
            expire_on_commit=False,
        )

    def on_commit(self, marker: str, callback: Callable[[], None]) -> None:
        """Call `callback` after each commit of a session that set `session.info[marker]`."""

        def after_commit(session: Session) -> None:
            if session.info.pop(marker, False):
                callback()

        def after_rollback(session: Session) -> None:
            session.info.pop(marker, None)

        event.listen(self._session_class, "after_commit", after_commit)
        event.listen(self._session_class, "after_rollback", after_rollback)

    async def migrate(self) -> None:
        await asyncio.to_thread(migrate, self.url)

    async def close(self) -> None:
        await self.engine.dispose()


def alembic_config(url: str) -> Config:
    config = Config()
    location = resources.files("justice.platform").joinpath("migrations")
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
