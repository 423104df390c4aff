"""The witnessed audit log, on the database `make bench` selected: append throughput with the
Merkle tree following the log (group-commit writer plus the "merkle" tail, timed until the tree
holds every record), against the issue's 3,000 records/s and the hash chain alone in the same
run; and, in a log of 1,000,000 chained records, the cost of a record's inclusion proof (the
record, its O(log n) stored nodes read in one query, the proof built) against the issue's 1 ms,
and of checking it offline against a checkpoint two simulated partners cosigned."""

from __future__ import annotations

import asyncio
import functools
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import SQLModel

from justice.audit import merkle
from justice.audit.chain import GENESIS_HASH, chain
from justice.audit.checkpoints import NoteSigner, NoteVerifier, open_checkpoint
from justice.audit.model import AuditEntry, AuditRecord
from justice.audit.store import AuditCursorRow, AuditRow, insert_records
from justice.audit.tail import LogTail
from justice.audit.witness import TREE_TAIL, WitnessedLog, leaf_of, verify_record
from justice.audit.witness_store import (
    CheckpointRow,
    CosignatureRow,
    TreeNodeRow,
    TreeReader,
    WitnessTransaction,
    node_key,
)
from justice.audit.writer import AuditWriter
from justice.platform.db import Database, DriverConnection, DriverThread, plain_reads
from tests.benchmarks.bench_audit import IN_FLIGHT, RECORDS, _entries
from tests.benchmarks.figures import Figure
from tests.benchmarks.platform_process import bench_database, selected_database

GOAL_RECORDS_PER_SECOND = 3_000.0
LOG_SIZE = 1_000_000
PARTNERS = ("prosecutor-antwerp", "court-brussels")
PROOFS = 2_000
_TABLES = (AuditRow, AuditCursorRow, TreeNodeRow, CheckpointRow, CosignatureRow)


async def _create_tables(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(
            lambda sync: SQLModel.metadata.create_all(
                sync,
                tables=[t.__table__ for t in _TABLES],  # type: ignore[attr-defined]
            )
        )


async def _append_rate(url: str, with_tree: bool) -> float:
    """Records/s from the first append until the last is committed (and, with the tree, a
    leaf of it)."""
    database = Database(url)
    await _create_tables(database)
    writer = AuditWriter(database, max_batch=1_000)
    log = WitnessedLog(
        lambda: WitnessTransaction(database.sessions),
        NoteSigner("bench/audit", Ed25519PrivateKey.generate()),
        {},
        lambda: datetime.now(UTC),
    )
    tail = LogTail(TREE_TAIL, lambda: WitnessTransaction(database.sessions), log.grow, batch=5_000)
    entries = _entries(RECORDS)
    semaphore = asyncio.Semaphore(IN_FLIGHT)

    async def one(entry: AuditEntry) -> int:
        async with semaphore:
            return (await writer.append(entry)).sequence

    if with_tree:
        tail.start()
    started = time.perf_counter()
    heads = await asyncio.gather(*(one(e) for e in entries))
    if with_tree:
        while True:
            async with WitnessTransaction(database.sessions) as tx:
                if await tx.records.cursor(TREE_TAIL) >= max(heads):
                    break
            await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    await tail.close()
    await writer.close()
    await database.close()
    return RECORDS / elapsed


def _store_chunk(
    records: list[AuditRecord], nodes: dict[merkle.Node, bytes], connection: DriverConnection
) -> None:
    insert_records(connection, records)
    connection.insert_rows(
        "audit_tree_node", [{"id": node_key(n), "hash": d} for n, d in nodes.items()]
    )


async def _fill_log(url: str) -> None:
    """LOG_SIZE chained audit records and their tree, stored 100,000 at a time as the audit
    writer stores them, with the tree's cursor at the end: what a year of traffic leaves
    behind."""
    database = Database(url)
    await _create_tables(database)
    await database.close()
    driver = DriverThread(url, "bench-fill")
    nodes: dict[merkle.Node, bytes] = {}
    previous, size = GENESIS_HASH, 0
    while size < LOG_SIZE:
        records = chain(_entries(100_000), size, previous)
        frontier = {n: nodes[n] for n in merkle.root_nodes(size)}
        created = merkle.append(size, [leaf_of(r) for r in records], frontier)
        await driver.run(functools.partial(_store_chunk, records, created))
        size, previous = records[-1].sequence, records[-1].hash
        # Keep only what later chunks can depend on.
        nodes = {n: created[n] if n in created else nodes[n] for n in merkle.root_nodes(size)}

    def finish(connection: DriverConnection) -> None:
        connection.execute(
            "INSERT INTO audit_cursor (name, sequence) VALUES (:name, :sequence)",
            {"name": TREE_TAIL, "sequence": size},
        )
        # As a live database would have them: planner statistics for the fresh tables.
        connection.execute("ANALYZE audit_record")
        connection.execute("ANALYZE audit_tree_node")

    await driver.run(finish)
    await driver.close()


async def _proof_cost(url: str) -> tuple[float, float]:
    """Mean ms per inclusion proof as GetAuditInclusionProof makes it (the record, its O(log n)
    nodes, the proof), and per offline check of one against a checkpoint two simulated partners
    cosigned (justice verify --audit-record)."""
    database = Database(url)
    reads = plain_reads(url)
    witnesses = [NoteSigner(p, Ed25519PrivateKey.generate(), witness=True) for p in PARTNERS]
    log = WitnessedLog(
        lambda: WitnessTransaction(database.sessions),
        NoteSigner("bench/audit", Ed25519PrivateKey.generate()),
        {w.name: NoteVerifier.parse(w.vkey) for w in witnesses},
        lambda: datetime.now(UTC),
        reader=TreeReader(database, reads),
    )
    note = await log.checkpoint()
    for witness in witnesses:
        head = open_checkpoint(note, NoteVerifier.parse(log.vkey))
        cosigned = await log.add_cosignature(witness.name, note + witness.cosign(head, 1))
    picks = [1 + random.randrange(LOG_SIZE) for _ in range(PROOFS)]
    for warm in picks[:50]:
        await log.inclusion(warm, LOG_SIZE)
    started = time.perf_counter()
    proofs = [await log.inclusion(sequence, LOG_SIZE) for sequence in picks]
    serve = (time.perf_counter() - started) / PROOFS * 1000
    keys = [NoteVerifier.parse(k) for k in (log.vkey, *(w.vkey for w in witnesses))]
    started = time.perf_counter()
    for inclusion in proofs:
        verify_record(inclusion.record, LOG_SIZE, inclusion.proof, cosigned, keys[0], keys[1:])
    check = (time.perf_counter() - started) / PROOFS * 1000
    await reads.close()
    await database.close()
    return serve, check


def main() -> list[Figure]:
    backend = {"postgres": "PostgreSQL", "sqlite": "SQLite"}[selected_database()]
    with tempfile.TemporaryDirectory(prefix="bench-audit-tree-") as directory:
        rates = {}
        for with_tree in (False, True):
            state = Path(directory) / f"append-{with_tree}"
            state.mkdir()
            with bench_database(state) as url:
                rates[with_tree] = asyncio.run(_append_rate(url, with_tree=with_tree))
        chain_only, with_tree = rates[False], rates[True]
        state = Path(directory) / "proofs"
        state.mkdir()
        with bench_database(state) as url:
            started = time.perf_counter()
            asyncio.run(_fill_log(url))
            print(f"1,000,000-record log and tree stored in {time.perf_counter() - started:.1f} s")
            serve, check = asyncio.run(_proof_cost(url))
    figures: list[Figure] = []
    figures += [
        Figure(
            f"audit append + Merkle tree following ({backend})",
            with_tree,
            "records/s",
            "issue goal",
            GOAL_RECORDS_PER_SECOND,
            goal=1.0,
        ),
        Figure(
            f"audit append + Merkle tree vs hash chain alone ({backend})",
            with_tree,
            "records/s",
            "hash chain alone",
            chain_only,
        ),
        Figure(
            f"inclusion proof of a record, 1,000,000-record log ({backend})",
            serve,
            "ms",
            "issue goal",
            1.0,
            goal=1.0,
            lower_is_better=True,
        ),
        Figure(
            "offline check of it against a checkpoint two partners cosigned",
            check,
            "ms",
            "issue goal for the proof",
            1.0,
            lower_is_better=True,
        ),
    ]
    for f in figures:
        print(f"{f.name}: {f.value:,.3f} {f.unit} (ratio {f.ratio:.2f} vs {f.baseline_name})")
    return figures
