"""One writer per SQLite database: concurrent transactions queue in the process, never in
SQLite's busy handler.

Each connection here runs with `busy_timeout=0`, so SQLite answers "database is locked" at
once instead of sleeping whenever a second writer reaches it: a writer that would have
waited in the busy handler fails the test instead.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError

from justice.exchange.message import OutgoingMessage
from justice.exchange.store import ExchangeTransaction, OutboxRow
from justice.platform.db import Database, execute

WRITERS = 60


def _no_busy_handler(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()


def _database(path: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{path}")
    # Registered after the Database's own pragmas, so it overrides their busy timeout.
    event.listen(database.engine.sync_engine, "connect", _no_busy_handler)
    return database


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    path = tmp_path / "justice.db"
    migrated = Database(f"sqlite+aiosqlite:///{path}")
    await migrated.migrate()
    await migrated.close()
    database = _database(path)
    try:
        yield database
    finally:
        await database.close()


async def _outbox_count(database: Database) -> int:
    async with ExchangeTransaction(database.sessions) as tx:
        return int(
            (await execute(tx.session, select(func.count()).select_from(OutboxRow))).one()[0]
        )


async def test_concurrent_writers_never_meet_a_locked_database(database: Database) -> None:
    async def write(i: int) -> None:
        async with ExchangeTransaction(database.sessions) as tx:
            # A read first (outside SQLite's write transaction), hops, then writes that
            # hold the write lock across several more hops, as the relay and services do.
            await tx.relay.backlog()
            await tx.outbox.add(OutgoingMessage("prosecutor-antwerp", "notice", b"x", f"n/{i}"))
            await tx.session.flush()
            await asyncio.sleep(0)
            pending = await tx.relay.pending(5)
            await tx.relay.mark_published([p.id for p in pending[:1]], *(2 * [datetime.now(UTC)]))
            await tx.commit()

    results = await asyncio.gather(*(write(i) for i in range(WRITERS)), return_exceptions=True)

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert await _outbox_count(database) == WRITERS


async def test_a_failed_writer_lets_the_next_one_in(database: Database) -> None:
    async def fail() -> None:
        async with ExchangeTransaction(database.sessions) as tx:
            await tx.outbox.add(OutgoingMessage("prosecutor-antwerp", "notice", b"x", "n/x"))
            await tx.session.flush()
            raise RuntimeError("the request failed after its first write")

    with pytest.raises(RuntimeError):
        await fail()
    # The rollback returned the connection, and with it the lock: this does not wait 10 s.
    async with asyncio.timeout(2):
        async with ExchangeTransaction(database.sessions) as tx:
            await tx.outbox.add(OutgoingMessage("prosecutor-antwerp", "notice", b"x", "n/y"))
            await tx.commit()
    assert await _outbox_count(database) == 1


async def test_without_the_shared_writer_sqlite_refuses_the_second_one(
    database: Database, tmp_path: Path
) -> None:
    # The control: another Database on the same file has its own writer, like another
    # process. Its write meets SQLite's lock, which with no busy handler fails at once.
    other = _database(tmp_path / "justice.db")
    try:
        async with database.sessions() as first:
            await execute(first, text("UPDATE exchange_outbox SET attempt = attempt"))
            await execute(first, text("INSERT INTO exchange_processed VALUES ('t', 'k', '')"))
            async with other.sessions() as second:
                with pytest.raises(OperationalError, match="database is locked"):
                    await execute(
                        second, text("INSERT INTO exchange_processed VALUES ('t', 'j', '')")
                    )
            await first.commit()
    finally:
        await other.close()


async def test_a_plain_driver_writer_queues_with_the_others(database: Database) -> None:
    assert database.writer is not None
    path = database.engine.url.database
    assert path is not None

    def raw_write() -> None:
        connection = sqlite3.connect(path, timeout=0)
        with connection:
            connection.execute("INSERT INTO exchange_processed VALUES ('raw', 'k', '')")
        connection.close()

    async def orm_write(i: int) -> None:
        async with ExchangeTransaction(database.sessions) as tx:
            await tx.outbox.add(OutgoingMessage("prosecutor-antwerp", "notice", b"x", f"n/{i}"))
            await tx.session.flush()
            await asyncio.sleep(0.01)
            await tx.commit()

    async def held_raw_write() -> None:
        async with database.writer.hold():  # type: ignore[union-attr]
            await asyncio.to_thread(raw_write)

    results = await asyncio.gather(
        *(orm_write(i) for i in range(10)), held_raw_write(), return_exceptions=True
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
