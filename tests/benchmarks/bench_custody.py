"""ListItems with 1,000,000 items on PostgreSQL: the first page by location and by case,
through the custody service (its plain driver read and the domain items it builds), against
the same query run directly with psycopg in the same run. Goal: at least half the raw
driver's rate.

JUSTICE_BENCH_CUSTODY_ITEMS sets the table size (default 1,000,000).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from justice.custody.ledger import CustodyConfig, ItemQuery, Ports, Scope
from justice.custody.model import Tolerance
from justice.custody.service import CustodyService
from justice.custody.store import CustodyTransaction, SqlItemListing
from justice.devstack.testing import POSTGRES_URL
from justice.platform.db import Database, PlainReads, plain_reads
from justice.platform.listing import Page
from justice.security.approvals import FourEyes
from tests.benchmarks.figures import Figure

ITEMS = int(os.environ.get("JUSTICE_BENCH_CUSTODY_ITEMS", "1000000"))
CASES = max(1, ITEMS // 100)  # 100 items per case
LOCATIONS = max(1, ITEMS // 200)  # 200 items per shelf
PAGE = 50
QUERIES = 400
_COLUMNS = [
    "id",
    "seizure_id",
    "case_number",
    "category",
    "state",
    "seal",
    "location",
    "custodian",
    "pending_receiver",
    "resume_state",
    "parent_id",
    "on_hold",
    "holds",
    "decision",
    "outcome",
    "due_time",
    "checked_out_to",
    "spec",
    "chain_length",
    "chain_head",
    "create_time",
    "update_time",
    "revision",
]
_SPEC = json.dumps({"description": "bag", "value": None, "photos": [], "count": 1, "details": None})


def _case(n: int) -> str:
    return f"BENCH/{n % CASES:07d}"


def _location(n: int) -> str:
    # Scattered: one shelf's items are not neighbours in id order.
    return f"locations/bench.{(n * 7919) % LOCATIONS}"


def _load(dsn: str, schema: str) -> float:
    now = datetime.now(UTC)
    started = time.perf_counter()
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        columns = ",".join(_COLUMNS)
        with cursor.copy(f"COPY {schema}.custody_item ({columns}) FROM STDIN") as copy:
            for n in range(ITEMS):
                copy.write_row(
                    (
                        f"{n:024x}",
                        "0" * 24,
                        _case(n),
                        "OTHER",
                        "IN_STORAGE",
                        f"B-{n}",
                        _location(n),
                        f"custodian-{n % 40}",
                        "",
                        "IN_STORAGE",
                        "",
                        False,
                        "[]",
                        None,
                        "",
                        None,
                        "",
                        _SPEC,
                        1,
                        "0" * 64,
                        now,
                        now,
                        1,
                    )
                )
        connection.commit()
        cursor.execute(f"ANALYZE {schema}.custody_item")
        connection.commit()
    return time.perf_counter() - started


def _service(database: Database, reads: PlainReads) -> CustodyService:
    """Only the listing is used by list(); the other ports are inert."""
    config = CustodyConfig(Tolerance(), Decimal(2500), "agency", "events", "prosecutor", "x")
    return CustodyService(
        Ports(
            uow=lambda: CustodyTransaction(database.sessions),
            reads=lambda: CustodyTransaction(database.read_sessions),
            listing=SqlItemListing(reads),
            four_eyes=FourEyes(lambda: datetime.now(UTC), timedelta(hours=1)),
            signer=None,  # type: ignore[arg-type]
            verifier=None,  # type: ignore[arg-type]
            pdf_signer=None,  # type: ignore[arg-type]
            anchors=None,  # type: ignore[arg-type]
            alerts=None,  # type: ignore[arg-type]
            annotate=lambda _: None,
            clock=lambda: datetime.now(UTC),
            config=config,
        )
    )


async def _service_rate(url: str, field: str, keys: list[str]) -> float:
    database = Database(url)
    reads = plain_reads(url)
    service = _service(database, reads)
    scope = Scope("bench")
    try:
        await service.list(ItemQuery(page=Page(PAGE, ""), **{field: keys[0]}), scope)  # warm
        started = time.perf_counter()
        for key in keys:
            items = await service.list(ItemQuery(page=Page(PAGE, ""), **{field: key}), scope)
            assert len(items) == PAGE
        return len(keys) / (time.perf_counter() - started)
    finally:
        await reads.close()
        await database.close()


async def _raw_rate(dsn: str, schema: str, field: str, keys: list[str]) -> float:
    statement = f"SELECT * FROM {schema}.custody_item WHERE {field} = %s ORDER BY id LIMIT {PAGE}"  # noqa: S608
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        await connection.execute(statement, (keys[0],))
        started = time.perf_counter()
        for key in keys:
            cursor = await connection.execute(statement, (key,))
            assert len(await cursor.fetchall()) == PAGE
        return len(keys) / (time.perf_counter() - started)


def main() -> list[Figure]:
    dsn = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    schema = f"bench_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError:
        print("PostgreSQL unreachable: skipping the custody figures")
        return []
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    figures = []
    try:
        asyncio.run(Database(url).migrate())
        print(f"loaded {ITEMS:,} items in {_load(dsn, schema):.0f} s")
        rng = random.Random(7)
        for field, key_of, count in (
            ("location", lambda i: f"locations/bench.{i}", LOCATIONS),
            ("case_number", lambda i: f"BENCH/{i:07d}", CASES),
        ):
            keys = [key_of(rng.randrange(count)) for _ in range(QUERIES)]
            raw = asyncio.run(_raw_rate(dsn, schema, field, keys))
            served = asyncio.run(_service_rate(url, field, keys))
            figures.append(
                Figure(
                    f"ListItems first page by {field}, {ITEMS:,} items (service)",
                    served,
                    "pages/s",
                    "psycopg, same query",
                    raw,
                    goal=0.5,
                )
            )
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")
    for f in figures:
        print(f"{f.name}: {f.value:,.0f} {f.unit} (ratio {f.ratio:.2f} vs {f.baseline_name})")
    return figures
