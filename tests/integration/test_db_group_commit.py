"""Group commit (platform/db.GroupCommit): units of Writes committed together, each one all
or nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime

import psycopg
from sqlalchemy import column, insert, table, update

from justice.platform.db import Database, DriverConnection, DriverThread, Writes, utc_time
from justice.platform.errors import Aborted

_INSERT = "INSERT INTO exchange_processed (scope, key, processed_at) VALUES (:scope, :key, :at)"
_TOUCH = "UPDATE exchange_processed SET processed_at = :at WHERE scope = 'group' AND key = :key"


def _unit(*keys: str, guard: str | None = None, marker: str = "") -> Writes:
    writes = Writes()
    at = datetime.now(UTC)
    for key in keys:
        writes.add(_INSERT, {"scope": "group", "key": key, "at": at})
    if guard is not None:
        writes.add(_TOUCH, {"key": guard, "at": at}, rows=1, refusal=Aborted("GONE", guard))
    if marker:
        writes.mark(marker)
    return writes


def _read(connection: DriverConnection) -> set[str]:
    cursor = connection.raw.execute("SELECT key FROM exchange_processed WHERE scope = 'group'")
    return {row[0] for row in cursor.fetchall()}


async def _keys(database: Database) -> set[str]:
    driver = DriverThread(database.url, "read")
    try:
        return await driver.run(_read)
    finally:
        await driver.close()


async def test_a_refused_unit_writes_nothing_and_the_others_commit(database: Database) -> None:
    committed: list[str] = []
    database.on_commit("seen", lambda: committed.append("seen"))
    ok, guarded, clash, later = await asyncio.gather(
        database.group.commit(_unit("a1", "a2", marker="seen")),
        # Its guard finds no row: refused after its own insert ran, which is undone.
        database.group.commit(_unit("b1", guard="missing", marker="seen")),
        # A key the first unit took: the constraint refuses this unit alone.
        database.group.commit(_unit("c1", "a1")),
        database.group.commit(_unit("d1", guard="a2")),
        return_exceptions=True,
    )
    assert ok is None
    assert isinstance(guarded, Aborted)
    assert guarded.reason == "GONE"
    assert isinstance(clash, (sqlite3.IntegrityError, psycopg.IntegrityError))
    assert later is None
    assert await _keys(database) == {"a1", "a2", "d1"}
    # The refused unit's marker does not fire; the committed one's does, once per batch.
    assert committed == ["seen"]


async def test_units_arriving_during_a_batch_go_in_the_next(database: Database) -> None:
    first = asyncio.ensure_future(database.group.commit(_unit("e1")))
    await asyncio.sleep(0)
    rest = [database.group.commit(_unit(f"e{i}")) for i in range(2, 40)]
    await asyncio.gather(first, *rest)
    assert {f"e{i}" for i in range(1, 40)} <= await _keys(database)


_PROCESSED = table("exchange_processed", column("scope"), column("key"), column("processed_at"))


def _core_unit(keys: list[str], at: datetime) -> Writes:
    writes = Writes()
    for key in keys:
        writes.add_statement(insert(_PROCESSED).values(scope="core", key=key, processed_at=at))
    writes.add_statement(
        update(_PROCESSED)
        .where(_PROCESSED.c.scope == "core", _PROCESSED.c.key.in_(keys))
        .values(processed_at=at)
    )
    return writes


async def test_core_statements_of_one_shape_carry_each_units_values(database: Database) -> None:
    """The compiled shape is reused; each unit's own values (and IN list) are what run."""
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    await database.group.commit(_core_unit(["k1", "k2", "k3"], early))
    await database.group.commit(_core_unit(["k4"], late))

    def read(connection: DriverConnection) -> list[tuple[str, int]]:
        rows = connection.raw.execute(
            "SELECT key, processed_at FROM exchange_processed WHERE scope = 'core' ORDER BY key"
        ).fetchall()
        return [(key, utc_time(at).month) for key, at in rows]  # type: ignore[union-attr]

    driver = DriverThread(database.url, "read")
    try:
        assert await driver.run(read) == [("k1", 1), ("k2", 1), ("k3", 1), ("k4", 6)]
    finally:
        await driver.close()
