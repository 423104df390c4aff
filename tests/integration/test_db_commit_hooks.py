"""Database.on_commit: the hook that wakes the outbox relay as soon as a message is committed."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from justice.platform.db import Database, commit_unflushed, execute

MARK = "test.marked"


async def test_the_hook_fires_after_a_marked_commit_only(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    other = Database(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    fired: list[str] = []
    database.on_commit(MARK, lambda: fired.append("a"))
    try:
        async with database.sessions() as session:
            await execute(session, text("SELECT 1"))  # a real transaction
            session.info[MARK] = True
            await session.rollback()
            await session.commit()  # the rollback dropped the mark
        async with database.sessions() as session:
            await session.commit()  # never marked
        async with other.sessions() as session:
            session.info[MARK] = True
            await session.commit()  # another database's hooks are its own
        assert fired == []
        async with database.sessions() as session:
            session.info[MARK] = True
            await session.commit()
            await session.commit()  # once per marking
        assert fired == ["a"]
    finally:
        await database.close()
        await other.close()


async def test_an_unflushed_commit_is_for_its_own_transaction_only(database_url: str) -> None:
    database = Database(database_url)
    await database.migrate()
    insert = "INSERT INTO exchange_processed VALUES ('t', :key, CURRENT_TIMESTAMP)"
    try:
        async with database.sessions() as session:
            await commit_unflushed(session)
            await execute(session, text(insert).bindparams(key="a"))
            if database.engine.dialect.name == "postgresql":
                setting = await execute(session, text("SHOW synchronous_commit"))
                assert setting.scalar_one() == "off"
            await session.commit()
        async with database.sessions() as session:
            # The commit is kept, and the next transaction on the connection waits again.
            found = await execute(session, text("SELECT key FROM exchange_processed"))
            assert found.scalars().all() == ["a"]
            if database.engine.dialect.name == "postgresql":
                setting = await execute(session, text("SHOW synchronous_commit"))
                assert setting.scalar_one() == "on"
    finally:
        await database.close()
