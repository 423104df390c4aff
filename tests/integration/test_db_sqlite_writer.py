"""One writer per SQLite database: concurrent transactions queue in the process, never in
SQLite's busy handler.

Each connection here runs with `busy_timeout=0`, so SQLite answers "database is locked" at
once instead of sleeping whenever a second writer reaches it: a writer that would have
waited in the busy handler fails the test instead.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from justice.audit.store import append_chained
from justice.exchange.message import OutgoingMessage
from justice.exchange.store import ExchangeTransaction, OutboxRow
from justice.platform.db import Database, DriverConnection, DriverThread, execute
from tests.audit_entries import entry

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


def _assert_none_failed(results: list[Any]) -> None:
    failed = [r for r in results if isinstance(r, BaseException)]
    # Where each failed, so that a lock met outside the queue names its statement.
    assert not failed, "\n".join("".join(traceback.format_exception(e))[-1500:] for e in failed)


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
            await tx.relay.release("relay")
            await tx.commit()

    results = await asyncio.gather(*(write(i) for i in range(WRITERS)), return_exceptions=True)

    _assert_none_failed(results)
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


async def test_a_writer_outside_the_process_queue_meets_the_lock(database: Database) -> None:
    # The control: a connection that does not queue on the writer (another process) meets
    # SQLite's lock, which with no busy handler fails at once. The sensor works.
    path = database.engine.url.database
    assert path is not None
    async with database.sessions() as first:
        await execute(first, text("INSERT INTO exchange_processed VALUES ('t', 'k', '')"))
        outsider = sqlite3.connect(path, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            outsider.execute("INSERT INTO exchange_processed VALUES ('t', 'j', '')")
        outsider.close()
        await first.commit()


async def test_two_databases_on_one_file_share_its_writer(
    database: Database, tmp_path: Path
) -> None:
    # The relay has a pool of its own on the same file: still one writer.
    other = _database(tmp_path / "justice.db")
    try:
        assert other.writer is database.writer

        async def write(on: Database, i: int) -> None:
            async with ExchangeTransaction(on.sessions) as tx:
                await tx.outbox.add(OutgoingMessage("prosecutor-antwerp", "n", b"x", f"n/{i}"))
                await tx.session.flush()
                await asyncio.sleep(0)
                await tx.commit()

        writes = [write(database if i % 2 else other, i) for i in range(WRITERS)]
        results = await asyncio.gather(*writes, return_exceptions=True)
        _assert_none_failed(results)
    finally:
        await other.close()


async def test_a_queued_writer_can_be_cancelled(database: Database) -> None:
    # Workers are stopped by cancelling them; one waiting for the writer must stop too.
    insert = "INSERT INTO exchange_processed VALUES ('t', :key, '')"

    async def write(key: str) -> None:
        async with database.sessions() as session:
            await execute(session, text(insert).bindparams(key=key))
            await session.commit()

    async with database.sessions() as first:
        await execute(first, text(insert).bindparams(key="a"))
        queued = asyncio.create_task(write("b"))
        await asyncio.sleep(0.2)
        queued.cancel()
        async with asyncio.timeout(2):
            with pytest.raises(asyncio.CancelledError):
                await queued
        await first.commit()
    async with asyncio.timeout(2):  # nothing was left holding the writer
        await write("c")


async def test_audit_batches_queue_with_the_orm_writers(database: Database) -> None:
    # The audit writer's transactions run on a plain driver connection in a thread of their
    # own (DriverThread); they queue on the same writer as the ORM's, so neither side ever
    # meets SQLite's lock (both run with busy_timeout=0 here).
    path = database.engine.url.database
    assert path is not None
    audit = DriverThread(f"sqlite+aiosqlite:///{path}", "test-audit")
    await audit.run(lambda connection: connection.raw.execute("PRAGMA busy_timeout=0"))

    async def report_write(i: int) -> None:
        async with ExchangeTransaction(database.sessions) as tx:
            await tx.outbox.add(OutgoingMessage("prosecutor-antwerp", "n", b"x", f"n/{i}"))
            await tx.session.flush()
            await asyncio.sleep(0.005)  # the lock held across hops, as a service holds it
            await tx.commit()

    async def audit_batch(i: int) -> None:
        entries = [entry(i * 10 + k) for k in range(10)]
        await asyncio.sleep(i * 0.002)  # spread over the writes
        await audit.run(lambda connection: append_chained(connection, entries, 0))

    try:
        work = [report_write(i) if i % 2 else audit_batch(i) for i in range(WRITERS)]
        results = await asyncio.gather(*work, return_exceptions=True)
        _assert_none_failed(results)
        assert await _outbox_count(database) == WRITERS // 2
        async with database.sessions() as session:
            chained = await execute(
                session, text("SELECT count(*), max(sequence) FROM audit_record")
            )
            assert tuple(chained.one()) == (WRITERS // 2 * 10, WRITERS // 2 * 10)
    finally:
        await audit.close()


async def test_a_cancelled_audit_batch_keeps_the_writer_until_its_transaction_ends(
    database: Database,
) -> None:
    path = database.engine.url.database
    assert path is not None
    audit = DriverThread(f"sqlite+aiosqlite:///{path}", "test-audit")
    started, finish = threading.Event(), threading.Event()

    def slow(connection: DriverConnection) -> None:
        connection.raw.execute("INSERT INTO exchange_processed VALUES ('t', 'slow', '')")
        started.set()
        finish.wait(10)

    try:
        batch = asyncio.create_task(audit.run(slow))
        await asyncio.to_thread(started.wait, 10)
        batch.cancel()
        await asyncio.sleep(0.1)
        # The thread's transaction still holds SQLite's lock: the writer is not free yet.
        assert database.writer is not None
        assert database.writer.locked
        finish.set()
        with pytest.raises(asyncio.CancelledError):
            await batch
        assert not database.writer.locked
        async with asyncio.timeout(5):  # and the next writer gets in
            async with database.sessions() as session:
                await execute(session, text("INSERT INTO exchange_processed VALUES ('t', 'n', '')"))
                await session.commit()
    finally:
        finish.set()
        await audit.close()


async def test_a_driver_batch_goes_before_queued_orm_writers(database: Database) -> None:
    # Its one short hop holds the lock briefly and every answer waits for the audit batch;
    # the ORM's writers hold it across event-loop hops.
    path = database.engine.url.database
    assert path is not None
    audit = DriverThread(f"sqlite+aiosqlite:///{path}", "test-audit")
    insert = "INSERT INTO exchange_processed VALUES ('t', :key, '')"
    done: list[str] = []

    async def orm_write() -> None:
        async with database.sessions() as session:
            await execute(session, text(insert).bindparams(key="orm"))
            await session.commit()
        done.append("orm")

    async def driver_write() -> None:
        await audit.run(
            lambda connection: connection.raw.execute(insert.replace(":key", "'driver'"))
        )
        done.append("driver")

    try:
        async with database.sessions() as first:
            await execute(first, text(insert).bindparams(key="first"))
            queued = asyncio.create_task(orm_write())
            await asyncio.sleep(0.1)  # the ORM writer waits for the lock first
            batch = asyncio.create_task(driver_write())
            await asyncio.sleep(0.1)
            assert done == []
            await first.commit()
        async with asyncio.timeout(10):
            await asyncio.gather(queued, batch)
        assert done == ["driver", "orm"]
    finally:
        await audit.close()
