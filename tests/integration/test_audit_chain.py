"""The audit log against the real databases: group commit, the append-only triggers,
tampering by SQL (update, delete, reorder) found by VerifyAuditChain, and the detector's
counters and cursor, which commit together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from justice.audit.chain import ChainProblem
from justice.audit.detection import Detector, Rules
from justice.audit.model import AlertRule, AuditEntry, AuditRecord
from justice.audit.service import AuditService
from justice.audit.store import AuditTransaction, SqlAuditRepository
from justice.audit.tail import Batch, CursorMoved, LogTail
from justice.audit.writer import AuditWriter
from justice.devstack.pki import DevPki
from justice.devstack.testing import PKI_PASSPHRASE
from justice.platform.db import Database
from justice.signing.keyed import KeyStoreSigner
from justice.signing.keystore import FileKeyStore
from justice.signing.xades import XadesSigner
from tests.audit_entries import entry

RECORDS = 300


async def _unit_of(_: str) -> str | None:
    return None


def rules() -> Rules:
    return Rules(
        window_seconds=300,
        spike_factor=5,
        spike_min_calls=60,
        spike_min_history=3,
        bulk_lookup_distinct=1_000_000,
        lookup_methods=frozenset(),
        duty_start=time(0),
        duty_end=time(0),
        timezone="UTC",
        duty_hours_by_unit={},
        denials_per_window=5,
        unit_bound_agencies=frozenset(),
    )


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await db.migrate()
    async with db.engine.begin() as connection:
        # A fresh log per test; the append-only trigger is lifted for the clean-up only.
        await _without_guard(
            connection,
            "DELETE FROM audit_record",
            "DELETE FROM audit_cursor",
            "DELETE FROM audit_baseline",
            "DELETE FROM audit_alert",
        )
    yield db
    await db.close()


async def _without_guard(connection: object, *statements: str) -> None:
    """What an attacker with DBA rights does: lift the append-only trigger, then tamper."""
    conn = connection  # an AsyncConnection
    dialect = conn.dialect.name  # type: ignore[attr-defined]
    if dialect == "postgresql":
        await conn.execute(
            text("ALTER TABLE audit_record DISABLE TRIGGER audit_record_append_only")
        )  # type: ignore[attr-defined]
    else:
        await conn.execute(text("DROP TRIGGER IF EXISTS audit_record_no_update"))  # type: ignore[attr-defined]
        await conn.execute(text("DROP TRIGGER IF EXISTS audit_record_no_delete"))  # type: ignore[attr-defined]
    for statement in statements:
        await conn.execute(text(statement))  # type: ignore[attr-defined]
    if dialect == "postgresql":
        await conn.execute(text("ALTER TABLE audit_record ENABLE TRIGGER audit_record_append_only"))  # type: ignore[attr-defined]
    else:
        for action in ("UPDATE", "DELETE"):
            await conn.execute(  # type: ignore[attr-defined]
                text(
                    f"CREATE TRIGGER audit_record_no_{action.lower()} BEFORE {action} "
                    "ON audit_record BEGIN "
                    "SELECT RAISE(ABORT, 'audit records are append-only'); END"
                )
            )


def service(
    database: Database,
    pki: DevPki,
    detection: Rules | None = None,
    uow: type[AuditTransaction] = AuditTransaction,
) -> AuditService:
    """A fresh service with a fresh detector: what a restarted process has."""
    keys = FileKeyStore(pki.signing_dir, PKI_PASSPHRASE)
    return AuditService(
        uow=lambda: uow(database.sessions),
        signer=KeyStoreSigner(keys, XadesSigner()),
        signer_id="justice-server",
        clock=lambda: datetime.now(UTC),
        detector=Detector(detection or rules(), _unit_of, lambda: datetime.now(UTC)),
    )


async def _fill(database: Database, count: int = RECORDS) -> list[int]:
    writer = AuditWriter(database, max_batch=64)
    records = await asyncio.gather(*(writer.append(entry(n)) for n in range(count)))
    await writer.close()
    return [r.sequence for r in records]


async def test_concurrent_appends_form_one_gapless_chain(database: Database, pki: DevPki) -> None:
    sequences = await _fill(database)
    assert sorted(sequences) == list(range(1, RECORDS + 1))
    check = await service(database, pki).verify_chain(0, 0)
    assert check.intact
    assert check.checked == RECORDS
    assert check.head_sequence == RECORDS


async def test_two_writers_on_one_database_keep_one_chain(database: Database, pki: DevPki) -> None:
    # Two replicas: each keeps its own head in memory; the primary key arbitrates.
    first, second = AuditWriter(database, max_batch=16), AuditWriter(database, max_batch=16)
    await asyncio.gather(*(w.append(entry(n)) for n in range(100) for w in (first, second)))
    await first.close()
    await second.close()
    check = await service(database, pki).verify_chain(0, 0)
    assert check.intact
    assert check.checked == 200


async def test_the_database_refuses_updates_and_deletes(database: Database) -> None:
    await _fill(database, 3)
    for statement in (
        "UPDATE audit_record SET outcome = 'OK' WHERE sequence = 2",
        "DELETE FROM audit_record WHERE sequence = 2",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with database.engine.begin() as connection:
                await connection.execute(text(statement))


@pytest.mark.parametrize(
    ("tampering", "broken_at", "problem"),
    [
        (
            ["UPDATE audit_record SET principal = 'officer-1002' WHERE sequence = 120"],
            120,
            ChainProblem.HASH_MISMATCH,
        ),
        (
            # Rewriting the hash too does not help: the next record links to the old one.
            [
                "UPDATE audit_record SET outcome = 'PERMISSION_DENIED', "
                "hash = '" + "a" * 64 + "' WHERE sequence = 120"
            ],
            120,
            ChainProblem.HASH_MISMATCH,
        ),
        (["DELETE FROM audit_record WHERE sequence = 120"], 120, ChainProblem.SEQUENCE_GAP),
        (
            # Swap two records' places.
            [
                "UPDATE audit_record SET sequence = -1 WHERE sequence = 120",
                "UPDATE audit_record SET sequence = 120 WHERE sequence = 121",
                "UPDATE audit_record SET sequence = 121 WHERE sequence = -1",
            ],
            120,
            ChainProblem.LINK_MISMATCH,
        ),
    ],
    ids=["update", "update-with-hash", "delete", "reorder"],
)
async def test_tampering_by_sql_is_found_at_the_first_broken_link(
    database: Database,
    pki: DevPki,
    tampering: list[str],
    broken_at: int,
    problem: ChainProblem,
) -> None:
    await _fill(database)
    audit = service(database, pki)
    assert (await audit.verify_chain(0, 0)).intact
    async with database.engine.begin() as connection:
        await _without_guard(connection, *tampering)
    check = await audit.verify_chain(0, 0)
    assert not check.intact
    assert (check.broken_at, check.problem) == (broken_at, problem)
    # A range that ends before the damage is still intact.
    assert (await audit.verify_chain(1, broken_at - 1)).intact


# Small thresholds: a spike is 5x a baseline of at least two earlier windows; 5 denials.
SENSITIVE = replace(rules(), spike_min_calls=10, spike_min_history=2)
QUIET_START = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


def _calls(minute: int, count: int, outcome: str = "OK") -> list[AuditEntry]:
    return [
        replace(
            entry(i),
            time=QUIET_START + timedelta(minutes=minute, seconds=i),
            outcome=outcome,
        )
        for i in range(count)
    ]


async def _append(database: Database, entries: list[AuditEntry]) -> None:
    writer = AuditWriter(database)
    await asyncio.gather(*(writer.append(e) for e in entries))
    await writer.close()


async def _follow(audit: AuditService, database: Database, batch: int = 7) -> None:
    """Run the detector's tail until it has handled the whole log."""

    tail = LogTail(
        "detector", lambda: AuditTransaction(database.sessions), audit.detect, batch=batch
    )
    async with AuditTransaction(database.sessions) as tx:
        cursor, head = await tx.records.cursor("detector"), await tx.records.head()
    while cursor < head:
        cursor = await tail.step(cursor)


async def _alerts(audit: AuditService) -> list[AlertRule]:
    from justice.platform.listing import Page

    return [a.rule for a in await audit.list_alerts(None, None, Page(100, ""))]


async def test_a_restarted_detector_keeps_each_users_baseline(
    database: Database, pki: DevPki
) -> None:
    # Three quiet five-minute windows of 4 calls, seen by one process...
    await _append(database, _calls(0, 4) + _calls(5, 4) + _calls(10, 4))
    await _follow(service(database, pki, SENSITIVE), database)
    # ...then 25 calls in one window, seen by the next process: 5x the stored baseline.
    await _append(database, _calls(15, 25))
    restarted = service(database, pki, SENSITIVE)
    await _follow(restarted, database)
    assert await _alerts(restarted) == [AlertRule.VOLUME_SPIKE]
    async with AuditTransaction(database.sessions) as tx:
        baseline = (await tx.baselines.of(["officer-1001"]))["officer-1001"]
    assert (baseline.history, baseline.calls) == ([4, 4, 4], 25)


class _CommitFailsOnce(AuditTransaction):
    """Fault injection: the detector's first commit fails (the database went away)."""

    failed = False

    async def commit(self) -> None:
        if not _CommitFailsOnce.failed:
            _CommitFailsOnce.failed = True
            raise OSError("connection lost")
        await super().commit()


async def test_a_batch_whose_store_failed_is_not_counted_twice(
    database: Database, pki: DevPki
) -> None:
    _CommitFailsOnce.failed = False
    audit = service(database, pki, SENSITIVE, uow=_CommitFailsOnce)
    await _append(database, _calls(0, 3, "PERMISSION_DENIED"))
    with pytest.raises(OSError, match="connection lost"):
        await _follow(audit, database, batch=100)
    await _follow(audit, database, batch=100)  # the retry, from the stored cursor
    assert await _alerts(audit) == []  # 3 denials, not 6
    await _append(database, _calls(1, 2, "PERMISSION_DENIED"))
    await _follow(audit, database)
    assert await _alerts(audit) == [AlertRule.REPEATED_DENIALS]


async def test_a_detector_behind_another_replica_stores_nothing(
    database: Database, pki: DevPki
) -> None:
    await _append(database, _calls(0, 6, "PERMISSION_DENIED"))
    ahead, behind = service(database, pki, SENSITIVE), service(database, pki, SENSITIVE)
    await _follow(ahead, database)
    async with AuditTransaction(database.sessions) as tx:
        records = await tx.records.after(0, 100)
    with pytest.raises(CursorMoved):
        await behind.detect(Batch("detector", 0, records))
    assert await _alerts(ahead) == [AlertRule.REPEATED_DENIALS]
    async with AuditTransaction(database.sessions) as tx:
        assert (await tx.baselines.of(["officer-1001"]))["officer-1001"].denials == 6


async def test_a_caught_up_detector_waits_for_records_to_gather(
    database: Database, pki: DevPki
) -> None:
    """Woken by every writer commit, it would run a transaction per commit; after a partial
    batch it settles first, so the next step takes whatever was committed meanwhile."""
    audit = service(database, pki, SENSITIVE)
    tail = LogTail(
        "detector",
        lambda: AuditTransaction(database.sessions),
        audit.detect,
        batch=500,
        settle_seconds=0.5,
    )
    await _append(database, _calls(0, 3))
    started = asyncio.get_running_loop().time()
    cursor = await tail.step(0)
    assert cursor == 3
    assert asyncio.get_running_loop().time() - started >= 0.5
    for minute in (1, 2, 3):  # three writer commits, then one detector transaction
        await _append(database, _calls(minute, 2))
    assert await tail.step(cursor) == 9


async def test_records_committed_here_reach_the_tail_without_a_read_back(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer hands its committed records to the tail; another replica's records (not
    handed over) are read from the database."""
    reads: list[int] = []
    read_after = SqlAuditRepository.after

    async def counted(self: SqlAuditRepository, sequence: int, limit: int, until: int = 0):  # type: ignore[no-untyped-def]
        reads.append(sequence)
        return await read_after(self, sequence, limit, until)

    monkeypatch.setattr(SqlAuditRepository, "after", counted)
    handled: list[list[AuditRecord]] = []

    async def handle(batch: Batch) -> None:
        handled.append(batch.records)

    tail = LogTail("detector", lambda: AuditTransaction(database.sessions), handle)
    here = AuditWriter(database, on_commit=tail.notify)
    committed = await asyncio.gather(*(here.append(e) for e in _calls(0, 3)))
    assert await tail.step(0) == 3
    assert reads == []
    assert handled == [sorted(committed, key=lambda r: r.sequence)]

    await _append(database, _calls(1, 2))  # another replica's writer: nothing handed over
    assert await tail.step(3) == 5
    assert reads == [3]
    assert [r.sequence for r in handled[1]] == [4, 5]
    await here.close()
