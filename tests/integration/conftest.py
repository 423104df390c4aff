"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from justice.platform.db import Database


@pytest.fixture(scope="module")
async def database(database_url: str) -> AsyncIterator[Database]:
    """The module's database, migrated."""
    db = Database(database_url)
    await db.migrate()
    yield db
    await db.close()
