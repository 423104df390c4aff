"""The database: one async engine per process, versioned migrations with alembic.

The same code runs on SQLite (embedded default) and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import psycopg
from alembic import command
from alembic.config import Config
from psycopg.rows import RowFactory, dict_row, tuple_row
from sqlalchemy import Select, event
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.types import DateTime, TypeDecorator
from sqlalchemy.util import await_
from sqlalchemy.util.concurrency import in_greenlet
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

_T = TypeVar("_T")
_Select = TypeVar("_Select", bound=Select[Any])


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


class _WriteLock:
    """An asyncio lock handed to waiters in order, with a lane that goes first.

    The audit writer's batch holds SQLite's lock for one short hop on its own thread and
    every answer waits for it, while an ORM transaction holds it across several event-loop
    hops: queued behind those, audit batches waited 0.3 s (median) for the lock under load.
    """

    def __init__(self) -> None:
        self._held = False
        self._first: collections.deque[asyncio.Future[None]] = collections.deque()
        self._rest: collections.deque[asyncio.Future[None]] = collections.deque()

    def locked(self) -> bool:
        return self._held

    async def acquire(self, *, first: bool = False) -> None:
        if not self._held and not self._first and not self._rest:
            self._held = True
            return
        waiter = asyncio.get_running_loop().create_future()
        lane = self._first if first else self._rest
        lane.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over just as it was cancelled: pass it on
            elif waiter in lane:
                lane.remove(waiter)
            raise

    def release(self) -> None:
        # Handed straight to the next waiter, so no newcomer slips in between.
        for lane in (self._first, self._rest):
            while lane:
                waiter = lane.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._held = False


class SqliteWriter:
    """One writer at a time per SQLite database in this process.

    SQLite has one write lock. Concurrent writers through aiosqlite held it across their
    thread hops while the others slept in SQLite's busy handler (1 -> 100 ms back-off): at
    100 msg/s the relay's mark-published transaction reached 733 ms and p99 SubmitReport ->
    partner receipt 0.8-1.7 s. Here a transaction takes an in-process lock at its first write
    and gives it back when its connection returns to the pool (after commit or rollback), so
    writers queue on the event loop and SQLite never sees two; reads never take it.
    DriverThread's transactions (the audit writer) queue on the same lock (`held`): the busy
    handler's sleeps between them and the ORM's writers made audit batches wait up to 1.5 s.
    """

    def __init__(self, timeout: float = _SQLITE_LOCK_SECONDS) -> None:
        self._timeout = timeout
        # One lock per event loop: a Database may outlive the loop that first used it.
        self._locks: dict[asyncio.AbstractEventLoop, _WriteLock] = {}

    def _lock(self) -> _WriteLock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            self._locks = {k: v for k, v in self._locks.items() if not k.is_closed()}
            lock = self._locks[loop] = _WriteLock()
        return lock

    async def _acquire(self, *, first: bool = False) -> _WriteLock:
        lock = self._lock()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that races
            # its timeout, and a worker being stopped would then never stop.
            async with asyncio.timeout(self._timeout):
                await lock.acquire(first=first)
        except TimeoutError:
            # What SQLite's busy handler would have said after the same wait.
            raise sqlite3.OperationalError("database is locked") from None
        return lock

    @property
    def locked(self) -> bool:
        """Whether a writer of this process holds the lock (on the running loop)."""
        return self._lock().locked()

    @contextlib.asynccontextmanager
    async def held(self, *, first: bool = True) -> AsyncIterator[None]:
        """The write lock, for a transaction outside SQLAlchemy (DriverThread: one hop, in a
        thread); `first`, it goes before the ORM's queued writers."""
        lock = await self._acquire(first=first)
        try:
            yield
        finally:
            lock.release()

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
        lock: _WriteLock | None = record.info.pop(_HOLDS_WRITE, None)
        if lock is not None:
            lock.release()


async def execute(
    session: AsyncSession, statement: Any, parameters: Mapping[str, Any] | None = None
) -> Any:
    """Run a Core statement on the session's own connection, inside its transaction.

    Repositories use plain rows rather than entities: the ORM's loading and bulk-update
    paths cost more than the queries themselves.
    """
    connection = await session.connection()
    return await connection.execute(statement, parameters)


def where_given(statement: _Select, *conditions: tuple[Any, object]) -> _Select:
    """`statement` narrowed by `column == value` for each (column, value) whose value is
    not None: a list request's optional filters."""
    for column, value in conditions:
        if value is not None:
            statement = statement.where(column == value)
    return statement


def page_after(statement: _Select, key: Any, *, after: str, size: int) -> _Select:
    """The first `size` rows of `statement` whose `key` sorts after `after` ("": from the
    start), in `key` order: keyset pages (AIP-158) that no insert can shift."""
    if after:
        statement = statement.where(key > after)
    return statement.order_by(key).limit(size)


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
        elif make_url(url).database not in (None, "", ":memory:"):
            # A fixed pool: aiosqlite gives each connection a thread of its own, and overflow
            # connections closed on return opened 369 connections per 3,200 calls.
            options = {"pool_size": 2 * pool_size, "max_overflow": 0}
        self.engine: AsyncEngine = create_async_engine(url, **options)
        self.writer: SqliteWriter | None = None
        if backend == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            self.writer = _sqlite_writer(url)
            event.listen(
                self.engine.sync_engine, "before_cursor_execute", self.writer.before_execute
            )
            event.listen(self.engine.sync_engine.pool, "checkin", self.writer.checkin)
        self._committed: dict[str, list[Callable[[], None]]] = {}
        self._group: GroupCommit | None = None
        # A session class of its own (sqlmodel's, which AsyncSession.exec needs), so that
        # commit hooks stay with this database.
        self._session_class: type[Session] = type("DatabaseSession", (Session,), {})
        self.sessions = async_sessionmaker(
            self.engine,
            class_=AsyncSession,
            sync_session_class=self._session_class,
            expire_on_commit=False,
        )
        # For reads of one statement: in autocommit there is no BEGIN and no ROLLBACK round
        # trip around the query (a ListItems page on PostgreSQL: see bench_custody.py).
        self.read_sessions = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"),
            class_=AsyncSession,
            sync_session_class=self._session_class,
            expire_on_commit=False,
        )

    @property
    def group(self) -> GroupCommit:
        """The group-committed writer of this database (`Writes` units, one hop a batch)."""
        if self._group is None:
            self._group = GroupCommit(self.url, "group-commit", self._committed)
        return self._group

    def on_commit(self, marker: str, callback: Callable[[], None]) -> None:
        """Call `callback` after each commit of a session that set `session.info[marker]`,
        and of a batch of `group` holding a unit that `mark`ed it."""
        self._committed.setdefault(marker, []).append(callback)

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
        if self._group is not None:
            await self._group.close()
            self._group = None
        await self.engine.dispose()


def alembic_config(url: str) -> Config:
    config = Config()
    location = resources.files("justice.platform").joinpath("migrations")
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def utc_time(value: datetime | str | None) -> datetime | None:
    """A time column read through a plain driver, as UtcDateTime gives it: aware, UTC.

    SQLite hands back SQLAlchemy's text form ("2026-12-01 17:58:18.123456"); psycopg an
    aware datetime.
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            # Parsed with the offset appended: datetime.replace(tzinfo=UTC) cost four times
            # the parse itself, twice per custody item of a ListItems page.
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:  # a text that carries its own offset
            value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def select_sql(table: Any) -> str:
    """`SELECT <every column> FROM <table> ` for a plain read (a WHERE goes after it)."""
    # Names from the table definition, never input.
    return f"SELECT {', '.join(c.name for c in table.columns)} FROM {table.name} "  # noqa: S608


def time_columns(table: Any) -> tuple[str, ...]:
    """The table's UtcDateTime columns: what `utc_times` converts in a plain row."""
    return tuple(c.name for c in table.columns if isinstance(c.type, UtcDateTime))


def utc_times(row: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """A row read through a plain driver with its time `columns` as UtcDateTime gives them."""
    return {**row, **{name: utc_time(row[name]) for name in columns}}


_NAMED_PARAMETER = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


class PlainReads(Protocol):
    """Hot reads through the driver itself, beside the async ORM engine.

    The async ORM session costs ~1.5 ms per read here (greenlet, aiosqlite's thread hop per
    statement, result processing); a plain driver call costs a tenth of that. Read-only and
    autocommit, so every query sees the latest commit of any process. SQL uses `:name`
    parameters on both backends. Connections are opened once and kept: no churn.
    """

    async def one(self, sql: str, parameters: Mapping[str, Any]) -> dict[str, Any] | None: ...
    async def all(self, sql: str, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row; for bounded queries only (a page)."""

    async def tuples(self, sql: str, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Every row as a tuple in the SELECT's column order; for bounded queries only. For a
        hot page that maps rows itself: no dict per row to build (and to collect)."""

    async def close(self) -> None: ...


def plain_reads(url: str, *, connections: int = 4) -> PlainReads:
    """Plain reads on the database at `url` (the engine's URL); nothing opens until used."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return SqliteReads(parsed.database or ":memory:")
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return PostgresReads(conninfo, connections)


class SqliteReads:
    """sqlite3 on the event loop: a WAL read of one indexed row takes tens of microseconds,
    less than the hop to a thread and back would."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self._path, isolation_level=None)
            # WAL readers never wait for the writer; the short timeout only covers recovery.
            connection.execute("PRAGMA busy_timeout=1000")
            connection.execute("PRAGMA query_only=1")
            connection.row_factory = sqlite3.Row
            self._connection = connection
        return self._connection

    async def one(self, sql: str, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
        row = self._connect().execute(sql, dict(parameters)).fetchone()
        return dict(row) if row is not None else None

    async def all(self, sql: str, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [dict(row) for row in self._connect().execute(sql, dict(parameters)).fetchall()]

    async def tuples(self, sql: str, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        cursor = self._connect().cursor()
        cursor.row_factory = None
        return cursor.execute(sql, dict(parameters)).fetchall()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class PostgresReads:
    """A fixed set of psycopg async connections in autocommit, handed out in turn; each
    keeps its prepared statements."""

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self._size = size
        self._idle: asyncio.Queue[psycopg.AsyncConnection[dict[str, Any]]] = asyncio.Queue()
        self._all: list[psycopg.AsyncConnection[dict[str, Any]]] = []
        self._opening = 0
        self._statements: dict[str, str] = {}

    async def _acquire(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        if self._idle.empty() and self._opening < self._size:
            self._opening += 1
            try:
                connection = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, row_factory=dict_row
                )
            except BaseException:
                self._opening -= 1
                raise
            self._all.append(connection)
            return connection
        return await self._idle.get()

    def _statement(self, sql: str) -> str:
        if sql not in self._statements:
            self._statements[sql] = _NAMED_PARAMETER.sub(r"%(\1)s", sql)
        return self._statements[sql]

    async def one(self, sql: str, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
        rows = await self._fetch(sql, parameters, one=True)
        return rows[0] if rows else None

    async def all(self, sql: str, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        return await self._fetch(sql, parameters, one=False)

    async def tuples(self, sql: str, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return await self._fetch(sql, parameters, one=False, factory=tuple_row)

    async def _fetch(
        self,
        sql: str,
        parameters: Mapping[str, Any],
        *,
        one: bool,
        factory: RowFactory[Any] = dict_row,
    ) -> list[Any]:
        connection = await self._acquire()
        try:
            cursor = connection.cursor(row_factory=factory)
            await cursor.execute(self._statement(sql), dict(parameters))  # type: ignore[arg-type]
            if one:
                row = await cursor.fetchone()
                return [row] if row is not None else []
            return await cursor.fetchall()
        except BaseException:
            # A connection left mid-query is not handed out again.
            self._all.remove(connection)
            self._opening -= 1
            await connection.close()
            raise
        finally:
            if connection in self._all:
                self._idle.put_nowait(connection)

    async def close(self) -> None:
        for connection in self._all:
            await connection.close()
        self._all.clear()


class DriverConnection:
    """A DB-API connection as DriverThread's work sees it: `:name` parameters and UTC times
    stored as the ORM stores them, on SQLite and PostgreSQL alike."""

    def __init__(self, connection: Any, backend: str) -> None:
        self.raw = connection
        self.backend = backend

    def _sql(self, sql: str) -> str:
        return sql if self.backend == "sqlite" else _NAMED_PARAMETER.sub(r"%(\1)s", sql)

    def time(self, value: datetime) -> Any:
        """SQLite keeps SQLAlchemy's text form (UtcDateTime reads it back); PostgreSQL the
        aware datetime."""
        moment = value.astimezone(UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f") if self.backend == "sqlite" else moment

    def _values(self, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            name: self.time(value) if isinstance(value, datetime) else value
            for name, value in (parameters or {}).items()
        }

    def execute(self, sql: str, parameters: Mapping[str, Any] | None = None) -> int:
        """Runs one statement; returns how many rows it changed."""
        cursor = self.raw.execute(self._sql(sql), self._values(parameters))
        return int(cursor.rowcount)

    def execute_all(self, statements: Sequence[tuple[str, Mapping[str, Any]]]) -> list[int]:
        """Runs the statements in order; returns how many rows each changed. On PostgreSQL
        they go in one pipeline: one round trip, not one each."""
        if self.backend == "sqlite":
            return [self.execute(sql, parameters) for sql, parameters in statements]
        with self.raw.pipeline():
            cursors = [
                self.raw.execute(self._sql(sql), self._values(parameters))
                for sql, parameters in statements
            ]
        return [int(cursor.rowcount) for cursor in cursors]

    def restart(self) -> None:
        """Rolls back what this transaction did and begins it again."""
        if self.backend == "sqlite":
            self.raw.execute("ROLLBACK")
            self.raw.execute("BEGIN IMMEDIATE")
        else:
            self.raw.rollback()

    def rows(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Every row the statement returns (a SELECT, or a write with RETURNING)."""
        return list(self.raw.execute(self._sql(sql), self._values(parameters)).fetchall())

    def one(self, sql: str, parameters: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        cursor = self.raw.execute(self._sql(sql), dict(parameters or {}))
        row: tuple[Any, ...] | None = cursor.fetchone()
        return row

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert `rows` (all with the same columns) into `table`. On PostgreSQL with COPY:
        its rows cost the driver about half of what an executemany's do."""
        if not rows:
            return
        columns = tuple(rows[0])
        if self.backend == "sqlite":
            self.raw.executemany(_insert_sql(table, columns), rows)
            return
        names = ", ".join(columns)
        with self.raw.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])


class DriverThread:
    """One plain DB-API connection on a thread of its own, for batched writes.

    `run(work)` runs `work` on that connection inside one transaction, in one hop to the
    thread and back, where aiosqlite hops once per statement and the async ORM adds its
    greenlet on top. sqlite3 and psycopg release the GIL while the database works. On SQLite
    the transaction queues on the file's SqliteWriter, then takes SQLite's write lock first
    (BEGIN IMMEDIATE), so what it reads stays current until it commits.
    """

    def __init__(self, url: str, name: str) -> None:
        parsed = make_url(url)
        self._backend = parsed.get_backend_name()
        # On SQLite its transactions queue with the process's other writers of the file.
        self._writer = _sqlite_writer(url) if self._backend == "sqlite" else None
        self._target = (
            parsed.database or ":memory:"
            if self._backend == "sqlite"
            else parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        )
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._connection: DriverConnection | None = None

    async def run(self, work: Callable[[DriverConnection], _T], *, first: bool = True) -> _T:
        """`work` in a transaction of its own, on this thread. On SQLite it queues for the
        process's write lock ahead of the ORM's writers, or with them when not `first`."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=self._name)
        if self._writer is None:
            return await asyncio.wrap_future(self._executor.submit(self._transaction, work))
        async with self._writer.held(first=first):
            done = asyncio.wrap_future(self._executor.submit(self._transaction, work))
            try:
                return await asyncio.shield(done)
            finally:
                # Cancelled or not, the lock stays taken until the thread's transaction ends.
                if not done.done():
                    await asyncio.wait({done})

    def _connect(self) -> DriverConnection:
        if self._connection is None:
            if self._backend == "sqlite":
                raw: Any = sqlite3.connect(self._target, isolation_level=None)
                _sqlite_pragmas(raw, None)
            else:
                raw = psycopg.connect(self._target)
            self._connection = DriverConnection(raw, self._backend)
        return self._connection

    def _transaction(self, work: Callable[[DriverConnection], _T]) -> _T:
        connection = self._connect()
        sqlite = self._backend == "sqlite"
        if sqlite:
            connection.raw.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
            if sqlite:
                connection.raw.execute("COMMIT")
            else:
                connection.raw.commit()
        except BaseException:
            try:
                if sqlite:
                    connection.raw.execute("ROLLBACK")
                else:
                    connection.raw.rollback()
            except Exception:
                self._drop()  # a broken connection is opened again next time
            raise
        return result

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.raw.close()
            self._connection = None

    async def close(self) -> None:
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._drop)
            self._executor.shutdown(wait=True)
            self._executor = None


@dataclass(frozen=True)
class _Statement:
    sql: str
    parameters: Mapping[str, Any]
    rows: int | None
    refusal: Exception | None


# What a unit breaking a unique key raises from `GroupCommit.commit` (the drivers' own).
CONFLICTS = (sqlite3.IntegrityError, psycopg.IntegrityError)

# Core statements compiled for `Writes`: `:name` parameters, which DriverConnection passes
# to SQLite as they are and rewrites for PostgreSQL.
_NAMED_PARAMETERS = sqlite_dialect.dialect(paramstyle="named")
# Statement shapes are few and fixed in the code, so the cache stays small.
_COMPILED: dict[Any, Any] = {}


@functools.cache
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    # Names from the callers' table definitions, never input.
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES (:{', :'.join(columns)})"  # noqa: S608


@functools.cache
def _update_sql(table: str, columns: tuple[str, ...], where: tuple[str, ...]) -> str:
    values = ", ".join(f"{c} = :v_{c}" for c in columns)
    condition = " AND ".join(f"{c} = :w_{c}" for c in where)
    return f"UPDATE {table} SET {values} WHERE {condition}"  # noqa: S608


def update_parameters(values: Mapping[str, Any], where: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of `Writes.update`'s statement: v_<column> for the values set, w_<column>
    for the rows chosen (a Core UPDATE bound with the same names takes them too)."""
    return {
        **{f"v_{name}": value for name, value in values.items()},
        **{f"w_{name}": value for name, value in where.items()},
    }


class Writes:
    """The writes of one unit of work, gathered as it runs and committed together by
    `GroupCommit`: for a use case whose reads need no transaction (what it read is checked
    by a guarded statement instead, e.g. an UPDATE on the revision it read)."""

    def __init__(self) -> None:
        self.statements: list[_Statement] = []
        self.markers: set[str] = set()
        self.channels: set[str] = set()

    def add(
        self,
        sql: str,
        parameters: Mapping[str, Any],
        *,
        rows: int | None = None,
        refusal: Exception | None = None,
    ) -> None:
        """One statement, `:name` parameters; with `rows`, the unit is refused with
        `refusal` (and nothing of it written) unless the statement changes that many rows."""
        self.statements.append(_Statement(sql, parameters, rows, refusal))

    def insert(self, table: str, values: Mapping[str, Any]) -> None:
        """One row, `values` by column; the SQL text is built once per table and columns."""
        self.add(_insert_sql(table, tuple(values)), values)

    def update(
        self,
        table: str,
        values: Mapping[str, Any],
        where: Mapping[str, Any],
        *,
        rows: int | None = None,
        refusal: Exception | None = None,
    ) -> None:
        """`values` set on the rows whose columns equal `where` (a guard such as a revision
        may be in both), refused as `add` says; the SQL text is built once per shape."""
        sql = _update_sql(table, tuple(values), tuple(where))
        self.add(sql, update_parameters(values, where), rows=rows, refusal=refusal)

    def add_statement(
        self, statement: Any, *, rows: int | None = None, refusal: Exception | None = None
    ) -> None:
        """A Core INSERT, UPDATE or DELETE (as `add`), compiled to the SQL that SQLite and
        PostgreSQL both read. Only bound values: a literal `true()` would render as 1."""
        # Compiled once per statement shape (SQLAlchemy's own cache key), then only its
        # values are taken: compiling each time cost a fines unit of work 4 % of its CPU.
        key = statement._generate_cache_key()
        if key is None:  # a shape SQLAlchemy will not cache: compiled each time
            compiled = statement.compile(
                dialect=_NAMED_PARAMETERS, compile_kwargs={"render_postcompile": True}
            )
            self.add(compiled.string, compiled.params, rows=rows, refusal=refusal)
            return
        compiled = _COMPILED.get(key.key)
        if compiled is None:
            compiled = statement.compile(dialect=_NAMED_PARAMETERS, cache_key=key)
            _COMPILED[key.key] = compiled
        # Expanded per call: an IN list's length is not part of the shape.
        expanded = compiled.construct_expanded_state(
            compiled.construct_params(extracted_parameters=key.bindparams)
        )
        self.add(expanded.statement, expanded.parameters, rows=rows, refusal=refusal)

    def clear(self) -> None:
        """Forget what was gathered (after its commit, or to drop it)."""
        self.statements.clear()
        self.markers.clear()
        self.channels.clear()

    def mark(self, marker: str) -> None:
        """Its commit calls what `Database.on_commit` registered for `marker`."""
        self.markers.add(marker)

    def notify(self, channel: str) -> None:
        """Its commit wakes `channel`'s listeners in other processes (PostgreSQL only)."""
        self.channels.add(channel)


_Unit = tuple[Writes, asyncio.Future[None]]


class GroupCommit:
    """Units of work committed together: each batch is one transaction in one hop to a
    driver thread (`DriverThread`), its statements on PostgreSQL in one pipeline (one round
    trip). A unit is all or nothing: when one is refused or breaks a constraint, the batch
    runs again with each unit in a savepoint, and only the others commit.

    Through the async ORM a SubmitReport transaction cost five round trips through the event
    loop (greenlet, aiosqlite's thread), each waiting for the loop's turn while the write
    lock was held, and on PostgreSQL one commit (a WAL flush, 15-130 ms on the shared test
    machine) per call. Here the lock is held for one hop, and one flush serves the batch.
    """

    def __init__(
        self, url: str, name: str, callbacks: Mapping[str, Sequence[Callable[[], None]]]
    ) -> None:
        self._driver = DriverThread(url, name)
        self._postgres = make_url(url).get_backend_name() == "postgresql"
        self._callbacks = callbacks
        self._queue: collections.deque[_Unit] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[DriverConnection], _T]) -> _T:
        """`work` as a transaction of its own on the writer's thread (one hop), queued for
        SQLite's write lock with the ORM's writers, not ahead of them: a poll that comes
        often (the relay's claim) would otherwise take the lock from everyone else."""
        return await self._driver.run(work, first=False)

    async def commit(self, writes: Writes) -> None:
        """Returns once the unit is committed; raises its refusal or the database's error."""
        if not writes.statements:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((writes, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        await done

    async def _run(self) -> None:
        while self._queue:
            batch = [unit for unit in self._queue if not unit[1].done()]  # not cancelled
            self._queue.clear()
            if not batch:
                continue
            try:
                outcomes = await self._driver.run(functools.partial(self._units, batch=batch))
            except Exception as error:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
                continue
            markers: set[str] = set()
            for (writes, done), outcome in zip(batch, outcomes, strict=True):
                if outcome is None:
                    markers |= writes.markers
                if done.done():
                    continue
                if outcome is None:
                    done.set_result(None)
                else:
                    done.set_exception(outcome)
            for marker in markers:
                for callback in self._callbacks.get(marker, ()):
                    callback()

    def _units(self, connection: DriverConnection, *, batch: list[_Unit]) -> list[Exception | None]:
        """Every unit at once (on PostgreSQL in one pipeline); only when a unit is refused
        or fails, the batch again with each unit in a savepoint, to find which."""
        units = [writes for writes, _ in batch]
        statements = [s for writes in units for s in writes.statements]
        try:
            changed: list[int] | None = connection.execute_all(
                [(s.sql, s.parameters) for s in statements] + self._notifications(units)
            )
        except (sqlite3.OperationalError, psycopg.OperationalError):
            raise  # the connection or the lock, not a unit: the whole batch fails
        except Exception:  # a constraint some unit broke: found below
            changed = None
        if changed is not None and all(
            s.rows is None or n == s.rows for s, n in zip(statements, changed, strict=False)
        ):
            return [None] * len(units)
        connection.restart()
        outcomes = [self._unit(connection, writes) for writes in units]
        kept = [writes for writes, outcome in zip(units, outcomes, strict=True) if not outcome]
        connection.execute_all(self._notifications(kept))
        return outcomes

    def _notifications(self, units: Sequence[Writes]) -> list[tuple[str, Mapping[str, Any]]]:
        if not self._postgres:
            return []
        channels = sorted({channel for writes in units for channel in writes.channels})
        return [("SELECT pg_notify(:channel, '')", {"channel": c}) for c in channels]

    @staticmethod
    def _unit(connection: DriverConnection, writes: Writes) -> Exception | None:
        connection.execute("SAVEPOINT unit")
        try:
            for statement in writes.statements:
                changed = connection.execute(statement.sql, statement.parameters)
                if statement.rows is not None and changed != statement.rows:
                    raise statement.refusal or RuntimeError("unexpected row count")
        except (sqlite3.OperationalError, psycopg.OperationalError):
            raise
        except Exception as refusal:  # a guard, or a constraint the unit broke
            connection.execute("ROLLBACK TO SAVEPOINT unit")
            return refusal
        connection.execute("RELEASE SAVEPOINT unit")
        return None

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self._driver.close()
