"""Fixtures shared by every test layer. Component fixtures (nats_server, s3_server, pki,
postgres_url) come from the justice.devstack.testing plugin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.devstack.testing import PKI_PASSPHRASE
from justice.devstack.tsa import DevTimestampAuthority
from justice.platform.config import Settings
from tests.databases import postgres_schema
from tests.exchange_env import nats_with_partners
from tests.signing_env import PASSPHRASE as SIGNING_PASSPHRASE
from tests.signing_env import dev_tsa
from tests.softhsm import SoftHsmToken, softhsm_token


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


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    # Session-wide: SoftHSM reads its configuration once per process.
    with softhsm_token(tmp_path_factory.mktemp("softhsm")) as token:
        yield token


@pytest.fixture(scope="module")
def exchange_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A nats-server of the module's own, its users generated for the test partners."""
    server = nats_with_partners(tmp_path_factory.mktemp("nats"))
    server.start()
    server.wait_ready()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def module_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A dev PKI of the test module's own: the certificates it issues and revokes stay there."""
    dev = DevPki(tmp_path_factory.mktemp("pki"), SIGNING_PASSPHRASE)
    dev.ensure()
    return dev


@pytest.fixture(scope="module")
def tsa(module_pki: DevPki) -> DevTimestampAuthority:
    """The in-process RFC 3161 authority of `module_pki`."""
    return dev_tsa(module_pki)
