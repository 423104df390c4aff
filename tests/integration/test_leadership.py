"""Two replicas of the platform on one PostgreSQL schema: exactly one runs the singleton work
(here the audit log's followers: detector, Merkle tree, checkpoints); when its lock
connection dies it stops, and when it goes away the other takes over."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from justice.app import Application, build, singleton_lock
from justice.audit.witness import TREE_TAIL
from justice.audit.witness_store import WitnessTransaction
from justice.devstack.pki import DevPki
from justice.devstack.testing import PKI_PASSPHRASE
from justice.platform.config import SERVICES, Settings
from justice.platform.leadership import lock_key
from tests.audit_entries import entry
from tests.databases import postgres_schema
from tests.eventually import eventually

pytestmark = pytest.mark.postgres

# Retries every 3 s and a 2 s liveness check: a takeover well inside this, even under load.
TAKEOVER_SECONDS = 20


@pytest.fixture
def shared(postgres_url: str, pki: DevPki, tmp_path: Path) -> Iterator[Settings]:
    with postgres_schema(postgres_url) as url:
        yield Settings(
            state_dir=tmp_path / "state",
            pki_root=pki.root,
            database_url=url,
            listen="127.0.0.1:0",
            key_passphrase=PKI_PASSPHRASE.decode(),
            shutdown_grace_seconds=1.0,
        )


def leading(*replicas: Application) -> list[Application]:
    """The replicas that believe they lead, checked against the work they run."""
    for replica in replicas:
        assert replica.leadership.leading == replica.audit.following
    return [replica for replica in replicas if replica.leadership.leading]


async def appended_and_grown(writer: Application, reader: Application, count: int) -> None:
    """`count` records through `writer`'s own audit writer, then the tree (grown by
    whichever replica leads) holds them all."""
    head = 0
    for n in range(count):
        head = (await writer.audit.writer.append(entry(n))).sequence

    async def grown() -> bool:
        async with WitnessTransaction(reader.database.sessions) as tx:
            return await tx.records.cursor(TREE_TAIL) >= head

    await eventually(grown, within=TAKEOVER_SECONDS, what="the tree holding every record")


def cut_lock_connection(settings: Settings) -> int:
    """Terminate the backend holding the singleton lock, as a failover or a network cut
    would; returns how many were terminated."""
    url = settings.resolved_database_url()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:
        row = connection.execute(
            "SELECT %(key)s::bigint # hashtext(current_schema())",
            {"key": lock_key(singleton_lock(SERVICES))},
        ).fetchone()
        assert row is not None
        key = int(row[0])
        terminated = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
            " AND granted AND classid = %(high)s AND objid = %(low)s AND objsubid = 1",
            {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF},
        ).fetchall()
    return len(terminated)


async def test_one_replica_leads_and_another_takes_over(
    shared: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    first = await build(shared)
    second = await build(shared)
    replicas = [first, second]
    try:
        assert leading(first, second) == [first]
        # Both replicas write records; the one tree grows without a clash.
        await appended_and_grown(first, second, 20)
        await appended_and_grown(second, first, 20)

        # Its lock connection gone, the leader stops its work; one of the two leads again.
        assert cut_lock_connection(shared) == 1

        async def stopped() -> bool:
            return not first.audit.following

        await eventually(stopped, within=TAKEOVER_SECONDS, what="the old leader stopping")

        async def one_leads() -> list[Application]:
            return leading(first, second)

        [leader] = await eventually(one_leads, within=TAKEOVER_SECONDS, what="a new leader")

        # The leader goes away (its connection closes with it): the other takes over.
        await leader.close()
        replicas.remove(leader)
        [other] = replicas

        async def took_over() -> bool:
            return leading(other) == [other]

        await eventually(took_over, within=TAKEOVER_SECONDS, what="the takeover")
        await appended_and_grown(other, other, 20)
    finally:
        for replica in replicas:
            await replica.close()
    # Only one Merkle tail ever grew the tree: none fell behind on a clash.
    behind = [r.getMessage() for r in caplog.records if "is behind" in r.getMessage()]
    assert not behind
