"""The witnessed audit log on PostgreSQL: append throughput with the Merkle tree following the
log (group-commit writer plus the "merkle" tail, timed until the tree holds every record),
against the issue's 3,000 records/s and the hash chain alone in the same run; and the cost of
an inclusion proof in a 1,000,000-leaf tree (the O(log n) stored nodes read in one query, the
proof built and verified), against the issue's 1 ms."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from datetime import UTC, datetime

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import SQLModel

from justice.audit import merkle
from justice.audit.checkpoints import NoteSigner
from justice.audit.model import AuditEntry
from justice.audit.store import AuditCursorRow, AuditRow
from justice.audit.tail import LogTail
from justice.audit.witness import TREE_TAIL, WitnessedLog
from justice.audit.witness_store import (
    CheckpointRow,
    CosignatureRow,
    TreeNodeRow,
    TreeReader,
    WitnessTransaction,
    node_key,
)
from justice.audit.writer import AuditWriter
from justice.devstack.testing import POSTGRES_URL
from justice.platform.db import Database
from tests.benchmarks.bench_audit import IN_FLIGHT, RECORDS, _entries
from tests.benchmarks.figures import Figure

GOAL_RECORDS_PER_SECOND = 3_000.0
TREE_SIZE = 1_000_000
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


def _fill_tree(dsn: str, schema: str) -> bytes:
    """The nodes of a TREE_SIZE-leaf tree, COPYed in; returns its root."""
    nodes: dict[merkle.Node, bytes] = {}
    size = 0
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        with cursor.copy(f"COPY {schema}.audit_tree_node (id, hash) FROM STDIN") as copy:
            while size < TREE_SIZE:
                chunk = [merkle.leaf_hash(f"leaf {size + i}".encode()) for i in range(100_000)]
                frontier = {n: nodes[n] for n in merkle.root_nodes(size)}
                created = merkle.append(size, chunk, frontier)
                for node, digest in created.items():
                    copy.write_row((node_key(node), digest))
                # Keep only what later chunks can depend on.
                size += len(chunk)
                nodes = {
                    n: created[n] if n in created else nodes[n] for n in merkle.root_nodes(size)
                }
        connection.commit()
    return merkle.root(size, nodes)


async def _proof_cost(url: str, root: bytes) -> float:
    """Mean ms per inclusion proof as the service makes it: its nodes in one autocommit query
    (TreeReader), the proof built, then verified."""
    database = Database(url)
    reader = TreeReader(database)
    picks = [random.randrange(TREE_SIZE) for _ in range(PROOFS)]
    leaves = {i: merkle.leaf_hash(f"leaf {i}".encode()) for i in picks}
    for warm in picks[:50]:
        await reader.nodes(merkle.inclusion_nodes(warm, TREE_SIZE))
    started = time.perf_counter()
    for index in picks:
        nodes = await reader.nodes(merkle.inclusion_nodes(index, TREE_SIZE))
        proof = merkle.inclusion_proof(index, TREE_SIZE, nodes)
        merkle.verify_inclusion(index, TREE_SIZE, leaves[index], proof, root)
    elapsed = time.perf_counter() - started
    await database.close()
    return elapsed / PROOFS * 1000


def main() -> list[Figure]:
    dsn = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    figures: list[Figure] = []
    for label in ("chain", "tree"):
        schema = f"bench_{secrets.token_hex(4)}"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        try:
            if label == "chain":
                chain_only = asyncio.run(_append_rate(url, with_tree=False))
                continue
            with_tree = asyncio.run(_append_rate(url, with_tree=True))
            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute(f"TRUNCATE {schema}.audit_tree_node")
            started = time.perf_counter()
            root = _fill_tree(dsn, schema)
            print(f"1,000,000-leaf tree stored in {time.perf_counter() - started:.1f} s")
            cost = asyncio.run(_proof_cost(url, root))
        finally:
            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute(f"DROP SCHEMA {schema} CASCADE")
    figures += [
        Figure(
            "audit append + Merkle tree following (PostgreSQL)",
            with_tree,
            "records/s",
            "issue goal",
            GOAL_RECORDS_PER_SECOND,
            goal=1.0,
        ),
        Figure(
            "audit append + Merkle tree vs hash chain alone (PostgreSQL)",
            with_tree,
            "records/s",
            "hash chain alone",
            chain_only,
        ),
        Figure(
            "inclusion proof, 1,000,000-leaf tree (PostgreSQL, read + build + verify)",
            cost,
            "ms",
            "issue goal",
            1.0,
            goal=1.0,
            lower_is_better=True,
        ),
    ]
    for f in figures:
        print(f"{f.name}: {f.value:,.3f} {f.unit} (ratio {f.ratio:.2f} vs {f.baseline_name})")
    return figures
