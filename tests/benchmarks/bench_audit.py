"""Audit append throughput with the hash chain (group commit, one writer task), on SQLite
and PostgreSQL, against a raw driver executemany of the same rows without the chain; and the
rate at which the detector follows the log (baselines and cursor committed per batch),
against the append rate: at or above it, detection keeps up with any load the log takes."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlmodel import SQLModel

from justice.audit.chain import GENESIS_HASH, chain
from justice.audit.compose import detection_rules
from justice.audit.detection import Detector
from justice.audit.model import AuditEntry
from justice.audit.service import AuditService
from justice.audit.store import (
    AlertRow,
    AuditCursorRow,
    AuditRow,
    AuditTransaction,
    BaselineRow,
    row_values,
)
from justice.audit.tail import LogTail
from justice.audit.writer import AuditWriter
from justice.devstack.testing import POSTGRES_URL
from justice.platform.config import AuditDetection
from justice.platform.db import Database
from tests.benchmarks.figures import Figure
from tests.benchmarks.platform_process import selected_database
from tests.databases import postgres_schema

RECORDS = 20_000
# RPCs in flight at once, each waiting for its own record to be committed.
IN_FLIGHT = 256
GOAL_RECORDS_PER_SECOND = 3_000.0
_COLUMNS = list(
    row_values(chain([AuditEntry(datetime.now(UTC), *[""] * 5, (), *[""] * 4)], 0, "")[0])
)


def _entries(count: int) -> list[AuditEntry]:
    start = datetime.now(UTC)
    return [
        AuditEntry(
            time=start + timedelta(microseconds=n),
            principal=f"officer-{n % 50}",
            agency="Federal Police",
            unit="units/pz-antwerpen-a",
            service="justice.reports.v1.ReportService",
            method="GetReport",
            resources=(f"reports/0191{n:08x}",),
            purpose="investigation PV/2025/0042",
            outcome="OK",
            reason="",
            peer="ipv4:10.1.2.3:51234",
        )
        for n in range(count)
    ]


async def _create_tables(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(
            lambda sync: SQLModel.metadata.create_all(
                sync,
                tables=[
                    t.__table__  # type: ignore[attr-defined]
                    for t in (AuditRow, AuditCursorRow, BaselineRow, AlertRow)
                ],
            )
        )


async def _unit_of(resource: str) -> str | None:
    return None


def _detector() -> Detector:
    # The production defaults.
    return Detector(detection_rules(AuditDetection()), _unit_of, lambda: datetime.now(UTC))


async def _detector_rate(database: Database) -> float:
    """Records/s the detector handles over the whole log, from its cursor at 0."""

    def uow() -> AuditTransaction:
        return AuditTransaction(database.sessions)

    service = AuditService(uow, _NoSigner(), "bench", lambda: datetime.now(UTC), _detector())

    tail = LogTail("detector", uow, service.detect, batch=500)
    cursor = 0
    started = time.perf_counter()
    while cursor < RECORDS:
        cursor = await tail.step(cursor)
    return RECORDS / (time.perf_counter() - started)


class _NoSigner:
    async def sign(self, document: bytes, signer_id: str) -> bytes:
        return document


async def _chained_rate(url: str) -> tuple[float, float]:
    """(append rate, detector follow rate) on one fresh log."""
    database = Database(url)
    await _create_tables(database)
    writer = AuditWriter(database, max_batch=1_000)
    entries = _entries(RECORDS)
    semaphore = asyncio.Semaphore(IN_FLIGHT)

    async def one(entry: AuditEntry) -> None:
        async with semaphore:
            await writer.append(entry)

    await asyncio.gather(*(one(e) for e in entries[:1_000]))  # warm-up: connections, head
    started = time.perf_counter()
    await asyncio.gather(*(one(e) for e in entries[1_000:]))
    elapsed = time.perf_counter() - started
    await writer.close()
    following = await _detector_rate(database)
    await database.close()
    return (RECORDS - 1_000) / elapsed, following


def _rows(offset: int) -> list[tuple[object, ...]]:
    # The same rows, with sequences after the chained run's, and no chain work.
    records = chain(_entries(RECORDS - 1_000), offset, GENESIS_HASH)
    return [tuple(row_values(r).values()) for r in records]


def _sqlite_raw_rate(path: Path) -> float:
    rows = _rows(RECORDS)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    placeholders = ",".join("?" * len(_COLUMNS))
    statement = f"INSERT INTO audit_record ({','.join(_COLUMNS)}) VALUES ({placeholders})"  # noqa: S608
    rows = [tuple(v.isoformat() if isinstance(v, datetime) else v for v in row) for row in rows]
    started = time.perf_counter()
    for i in range(0, len(rows), 1_000):
        with connection:
            connection.executemany(statement, rows[i : i + 1_000])
    elapsed = time.perf_counter() - started
    connection.close()
    return len(rows) / elapsed


def _postgres_raw_rate(url: str) -> float:
    rows = _rows(RECORDS)
    placeholders = ",".join(["%s"] * len(_COLUMNS))
    statement = f"INSERT INTO audit_record ({','.join(_COLUMNS)}) VALUES ({placeholders})"  # noqa: S608
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        started = time.perf_counter()
        for i in range(0, len(rows), 1_000):
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(statement, rows[i : i + 1_000])
        elapsed = time.perf_counter() - started
    return len(rows) / elapsed


def _figures(backend: str, rates: tuple[float, float], raw: float) -> list[Figure]:
    chained, following = rates
    return [
        Figure(
            f"audit append, hash chain + group commit ({backend})",
            chained,
            "records/s",
            "issue goal",
            GOAL_RECORDS_PER_SECOND,
            goal=1.0,
        ),
        Figure(
            f"audit append vs raw executemany, no chain ({backend})",
            chained,
            "records/s",
            "raw driver executemany",
            raw,
        ),
        Figure(
            f"audit detector follow rate, baselines persisted ({backend})",
            following,
            "records/s",
            "audit append rate",
            chained,
            goal=1.0,
        ),
    ]


def main() -> list[Figure]:
    """On the database `make bench` selected (JUSTICE_BENCH_DATABASE)."""
    if selected_database() == "postgres":
        with postgres_schema(POSTGRES_URL) as url:
            figures = _figures(
                "PostgreSQL", asyncio.run(_chained_rate(url)), _postgres_raw_rate(url)
            )
    else:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "audit.db"
            rates = asyncio.run(_chained_rate(f"sqlite+aiosqlite:///{path}"))
            figures = _figures("SQLite", rates, _sqlite_raw_rate(path))
    for f in figures:
        print(f"{f.name}: {f.value:,.0f} {f.unit} (ratio {f.ratio:.2f} vs {f.baseline_name})")
    return figures
