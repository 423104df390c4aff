"""Fixtures shared by every test layer. Component fixtures (nats_server, s3_server, pki,
postgres_url) come from the justice.devstack.testing plugin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from justice.devstack.pki import DevPki
from justice.devstack.testing import PKI_PASSPHRASE
from justice.platform.config import Settings
from tests.databases import postgres_schema


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a private schema in PostgreSQL's `test`."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'justice.db'}"
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture(scope="module")
def settings(database_url: str, pki: DevPki, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        state_dir=tmp_path_factory.mktemp("state"),
        pki_root=pki.root,
        database_url=database_url,
        listen="127.0.0.1:0",
        key_passphrase=PKI_PASSPHRASE.decode(),
        shutdown_grace_seconds=1.0,
    )
