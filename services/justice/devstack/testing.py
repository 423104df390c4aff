"""pytest plugin with the real dev-stack components; load it with `-p justice.devstack.testing`.

Fixtures are session-scoped and start their server only when a test asks for it.
Each one stops its process in a `finally`, so a failing test or an interrupted
session does not leave servers behind.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from justice.devstack.ceph import CephRgw
from justice.devstack.nats import NatsServer
from justice.devstack.seaweed import SeaweedS3
from justice.devstack.supervised import ProcessNotReadyError

if TYPE_CHECKING:
    from justice.devstack.pki import DevPki

__all__ = ["nats_server", "pki", "postgres_url", "rgw_server", "s3_server"]

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_URL = f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/test"
PKI_PASSPHRASE = b"test-passphrase"


def _running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with SeaweedS3(
        tmp_path_factory.mktemp("s3"),
        access_key=secrets.token_hex(10),
        secret_key=secrets.token_urlsafe(30),
    ) as server:
        yield server


@pytest.fixture(scope="session")
def rgw_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CephRgw]:
    """Ceph's radosgw 16.2 (a second S3 implementation); skipped where Ceph cannot start,
    except in CI, where that is a failure."""
    try:
        server = CephRgw(
            tmp_path_factory.mktemp("ceph"),
            access_key=secrets.token_hex(10),
            secret_key=secrets.token_urlsafe(30),
        )
        server.__enter__()
    except ProcessNotReadyError as error:
        message = f"Ceph radosgw did not start: {error}"
    else:
        try:
            yield server
        finally:
            server.__exit__(None, None, None)
        return
    if _running_in_ci():
        pytest.fail(f"{message}; CI must run the S3 conformance suite on it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    # Imported here so the NATS/S3 fixtures work even where the signing stack is not installed.
    from justice.devstack.pki import DevPki

    dev_pki = DevPki(tmp_path_factory.mktemp("pki"), passphrase=PKI_PASSPHRASE)
    dev_pki.ensure()
    return dev_pki


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The local PostgreSQL; skipped where it is absent, except in CI, where that is a failure."""
    try:
        with socket.create_connection((POSTGRES_HOST, POSTGRES_PORT), timeout=1):
            return POSTGRES_URL
    except OSError as exc:
        reason = str(exc)
    # Outside the except block, so the report shows our message and not a chained traceback.
    message = f"PostgreSQL is not reachable at {POSTGRES_HOST}:{POSTGRES_PORT} ({reason})"
    if _running_in_ci():
        pytest.fail(f"{message}; CI must run the suite against PostgreSQL", pytrace=False)
    pytest.skip(message)
