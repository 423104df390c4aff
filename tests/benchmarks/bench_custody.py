"""ListItems with 1,000,000 items, on the database `make bench` selected: the first page by
location and by case, through the custody service (its plain driver read and the domain items
it builds), against the same query run directly with the driver (psycopg or sqlite3) in the
same run, in interleaved rounds (the median of each side's rates). Goal: at least half the raw
driver's rate.

JUSTICE_BENCH_CUSTODY_ITEMS sets the table size (default 1,000,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from justice.custody.ledger import CustodyConfig, ItemQuery, Ports, Scope
from justice.custody.model import Tolerance
from justice.custody.service import CustodyService
from justice.custody.store import ITEM_COLUMNS, CustodyTransaction, SqlItemListing
from justice.platform.db import Database, DriverConnection, DriverThread, PlainReads, plain_reads
from justice.platform.listing import Page
from justice.security.approvals import FourEyes
from tests.benchmarks.figures import Figure, median_of
from tests.benchmarks.platform_process import bench_database, selected_database

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


def _store_items(first: int, count: int, connection: DriverConnection) -> None:
    now = connection.time(datetime.now(UTC))
    rows = [
        dict(
            zip(
                ITEM_COLUMNS,
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
                ),
                strict=True,
            )
        )
        for n in range(first, min(first + count, ITEMS))
    ]
    connection.insert_rows("custody_item", rows)


async def _load(url: str) -> float:
    """ITEMS items, stored 100,000 at a time (COPY on PostgreSQL), then analysed."""
    started = time.perf_counter()
    driver = DriverThread(url, "bench-load")
    for first in range(0, ITEMS, 100_000):
        await driver.run(functools.partial(_store_items, first, 100_000))
    await driver.run(lambda connection: connection.execute("ANALYZE custody_item"))
    await driver.close()
    return time.perf_counter() - started


@contextlib.asynccontextmanager
async def _raw_query(url: str, field: str) -> AsyncIterator[Callable[[str], Awaitable[int]]]:
    """The page's query through the driver alone, the baseline: how many rows it read."""
    sql = f"SELECT * FROM custody_item WHERE {field} = %s ORDER BY id LIMIT {PAGE}"  # noqa: S608
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connection = sqlite3.connect(parsed.database or "", isolation_level=None)

        async def on_sqlite(key: str) -> int:
            return len(connection.execute(sql.replace("%s", "?"), (key,)).fetchall())

        try:
            yield on_sqlite
        finally:
            connection.close()
        return
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    pg = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)

    async def on_postgres(key: str) -> int:
        return len(await (await pg.execute(sql, (key,))).fetchall())

    try:
        yield on_postgres
    finally:
        await pg.close()


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


async def _rates(url: str, field: str, keys: list[str]) -> Rates:
    """Pages per second of the service and of the raw driver over the same keys, in ROUNDS
    interleaved rounds (which side goes first alternates), after an untimed pass that brings
    the keys' pages into the database's cache for both."""
    database = Database(url)
    reads = plain_reads(url)
    service = _service(database, reads)
    scope = Scope("bench")

    async def served(key: str) -> int:
        query = ItemQuery(page=Page(PAGE, ""), **{field: key})
        return len(await service.list(query, scope))

    async def rate(side: Callable[[str], Awaitable[int]], chunk: list[str]) -> float:
        started = time.perf_counter()
        for key in chunk:
            assert await side(key) == PAGE
        return len(chunk) / (time.perf_counter() - started)

    try:
        async with _raw_query(url, field) as raw:
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
        await reads.close()
        await database.close()


def main() -> list[Figure]:
    driver = "sqlite3" if selected_database() == "sqlite" else "psycopg"
    figures = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-custody-") as state,
        bench_database(Path(state)) as url,
    ):
        asyncio.run(Database(url).migrate())
        print(f"loaded {ITEMS:,} items in {asyncio.run(_load(url)):.0f} s")
        rng = random.Random(7)
        for field, key_of, count in (
            ("location", lambda i: f"locations/bench.{i}", LOCATIONS),
            ("case_number", lambda i: f"BENCH/{i:07d}", CASES),
        ):
            keys = [key_of(rng.randrange(count)) for _ in range(QUERIES)]
            served, raw = asyncio.run(_rates(url, field, keys))
            figures.append(
                Figure(
                    f"ListItems first page by {field}, {ITEMS:,} items (service;"
                    f" median of {ROUNDS} interleaved rounds)",
                    median_of(served),
                    "pages/s",
                    f"{driver}, same query",
                    median_of(raw),
                    goal=0.5,
                )
            )
    for f in figures:
        print(f"{f.name}: {f.value:,.0f} {f.unit} (ratio {f.ratio:.2f} vs {f.baseline_name})")
    return figures
