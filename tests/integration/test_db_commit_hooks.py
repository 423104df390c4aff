"""Database.on_commit: the hook that wakes the outbox relay as soon as a message is committed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from justice.exchange.message import OutgoingMessage
from justice.exchange.store import ExchangeTransaction, RelayWrites
from justice.platform.db import Database, execute

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


async def test_the_relays_unflushed_claim_leaves_the_next_transaction_flushed(
    database_url: str,
) -> None:
    """The claim commits without waiting for PostgreSQL's WAL flush (SET LOCAL): the next
    transaction on the writer's connection waits for it again."""
    database = Database(database_url)
    await database.migrate()
    try:
        async with ExchangeTransaction(database.sessions) as tx:
            await tx.outbox.add(OutgoingMessage("prosecutor-antwerp", "notice", b"x", "n/1"))
            await tx.commit()
        now = datetime.now(UTC)
        claimed = await RelayWrites(database.group).claim("relay", 10, now, now)
        assert [(m.recipient, m.payload) for m in claimed] == [("prosecutor-antwerp", b"x")]
        if database.engine.dialect.name == "postgresql":
            setting = await database.group.run(lambda c: c.rows("SHOW synchronous_commit"))
            assert setting == [("on",)]
    finally:
        await database.close()
