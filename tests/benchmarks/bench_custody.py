"""ListItems with 1,000,000 items on PostgreSQL: the first page by location and by case,
through the custody service (its plain driver read and the domain items it builds), against
the same query run directly with psycopg in the same run, in interleaved rounds (the median
of each side's rates). Goal: at least half the raw driver's rate.

JUSTICE_BENCH_CUSTODY_ITEMS sets the table size (default 1,000,000).
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from justice.custody.ledger import CustodyConfig, ItemQuery, Ports, Scope
from justice.custody.model import Tolerance
from justice.custody.service import CustodyService
from justice.custody.store import ITEM_COLUMNS, CustodyTransaction, SqlItemListing
from justice.devstack.testing import POSTGRES_URL
from justice.platform.db import Database, PlainReads, plain_reads
from justice.platform.listing import Page
from justice.security.approvals import FourEyes
from tests.benchmarks.figures import Figure, median_of

ITEMS = int(os.environ.get("JUSTICE_BENCH_CUSTODY_ITEMS", "1000000"))
CASES = max(1, ITEMS // 100)  # 100 items per case
LOCATIONS = max(1, ITEMS // 200)  # 200 items per shelf
PAGE = 50
QUERIES = 400
ROUNDS = 8
Rates = tuple[list[float], list[float]]  # (service, raw driver), one rate per round


def _case(n: int) -> str:
    return f"BENCH/{n % CASES:07d}"


def _location(n: int) -> str:
    # Scattered: one shelf's items are not neighbours in id order.
    return f"locations/bench.{(n * 7919) % LOCATIONS}"


def _load(dsn: str, schema: str) -> float:
    now = datetime.now(UTC)
    started = time.perf_counter()
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        columns = ",".join(ITEM_COLUMNS)
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
                        f"bag {n}",
                        None,
                        None,
                        "[]",
                        1,
                        None,
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


async def _rates(dsn: str, url: str, schema: str, field: str, keys: list[str]) -> Rates:
    """Pages per second of the service and of the raw driver over the same keys, in ROUNDS
    interleaved rounds (which side goes first alternates), after an untimed pass that brings
    the keys' pages into PostgreSQL's cache for both."""
    statement = f"SELECT * FROM {schema}.custody_item WHERE {field} = %s ORDER BY id LIMIT {PAGE}"  # noqa: S608
    database = Database(url)
    reads = plain_reads(url)
    service = _service(database, reads)
    scope = Scope("bench")
    connection = await psycopg.AsyncConnection.connect(dsn, autocommit=True)

    async def raw(key: str) -> int:
        return len(await (await connection.execute(statement, (key,))).fetchall())

    async def served(key: str) -> int:
        query = ItemQuery(page=Page(PAGE, ""), **{field: key})
        return len(await service.list(query, scope))

    async def rate(side: Callable[[str], Awaitable[int]], chunk: list[str]) -> float:
        started = time.perf_counter()
        for key in chunk:
            assert await side(key) == PAGE
        return len(chunk) / (time.perf_counter() - started)

    try:
        for key in keys:
            await raw(key)
            await served(key)
        rates: Rates = ([], [])
        per_round = len(keys) // ROUNDS
        for round_no in range(ROUNDS):
            chunk = keys[round_no * per_round : (round_no + 1) * per_round]
            for side in (0, 1) if round_no % 2 else (1, 0):
                rates[side].append(await rate(served if side == 0 else raw, chunk))
        return rates
    finally:
        await connection.close()
        await reads.close()
        await database.close()


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
            served, raw = asyncio.run(_rates(dsn, url, schema, field, keys))
            figures.append(
                Figure(
                    f"ListItems first page by {field}, {ITEMS:,} items (service;"
                    f" median of {ROUNDS} interleaved rounds)",
                    median_of(served),
                    "pages/s",
                    "psycopg, same query",
                    median_of(raw),
                    goal=0.5,
                )
            )
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")
    for f in figures:
        print(f"{f.name}: {f.value:,.0f} {f.unit} (ratio {f.ratio:.2f} vs {f.baseline_name})")
    return figures
