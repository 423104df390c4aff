"""Partner exchange, on SQLite and on PostgreSQL: outbox insert -> partner receipt recorded,
against raw JetStream publish_async on the same nats-server in the same run; SubmitReport ->
partner receipt latency at a steady 100 submissions/s; and SubmitReport at 300/s offered.

The platform runs as `justice serve` (relay and inbound consumer inside it) in its own
process; the partner (SDK) and the load generator run here, and write and count outbox rows
through the same database URL the platform uses. The rows are written as the domains write
theirs (a unit of Writes, group-committed): through the ORM session, as before 2 Dec, this
process's inserts took a fifth of its CPU, and this process was the pipeline's busiest
(81 % of a core, the platform's GIL ~40 %): end to end 1,051-1,194 msg/s then against
1,263-1,618 after, interleaved, on SQLite; 1,182-1,233 against 1,298-1,329 on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import nats
import psycopg
from lxml import etree
from sqlalchemy import func, select

from justice.devstack.nats import NatsServer
from justice.devstack.testing import POSTGRES_URL
from justice.exchange.message import OutgoingMessage
from justice.exchange.model import DeliveryState
from justice.exchange.store import DeliveryRow, ExchangeTransaction, PlainOutbox
from justice.exchange.v1 import exchange_pb2, exchange_pb2_grpc
from justice.partner.client import Answer, PartnerClient, PartnerConfig, ProcessedLog, Received
from justice.partner.client import listen as partner_listen
from justice.platform.db import Database, Writes
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from justice.signing.keystore import FileKeyStore
from tests.benchmarks.bench_signing import _draft
from tests.benchmarks.figures import Figure
from tests.benchmarks.platform_process import (
    PASSPHRASE,
    channel_credentials,
    selected_database,
    served_platform,
)
from tests.exchange_env import (
    SECRET,
    nats_with_partners,
    partner_credentials,
    platform_url,
)

PARTNER = "prosecutor-antwerp"
RAW_MESSAGES = 20_000
E2E_MESSAGES = 4_000
RATE_SECONDS = 4
# Well under capacity: the pipeline's own latency, without a queue in front of it.
LOW_RATE = 100
P99_GOAL_MS = 50.0
# The sustained rate: every call must succeed.
HIGH_RATE = 300


async def _raw_publish_rate(server: NatsServer, size: int) -> float:
    nc = await nats.connect(platform_url(server))
    js = nc.jetstream(publish_async_max_pending=4096)
    await js.add_stream(name="BENCH_RAW", subjects=["bench.raw"])
    payload = b"x" * size
    started = time.perf_counter()
    for i in range(RAW_MESSAGES):
        await js.publish_async("bench.raw", payload, headers={"Nats-Msg-Id": f"raw-{i}"})
    await js.publish_async_completed()
    rate = RAW_MESSAGES / (time.perf_counter() - started)
    await nc.close()
    return rate


async def _partner(server: NatsServer, state: Path) -> PartnerClient:
    keys = FileKeyStore(state / "pki" / "envelope", PASSPHRASE.encode())
    from cryptography import x509

    return await PartnerClient.connect(
        PartnerConfig(PARTNER, partner_credentials(server, PARTNER)),
        keys.identity(PARTNER),
        keys.identity("justice-server").certificate,
        x509.load_pem_x509_certificates((state / "pki" / "ca.pem").read_bytes()),
    )


async def _register(port: int, state: Path) -> None:
    credentials = channel_credentials(state / "pki", "access-admin-5001")
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        await stub.CreatePartner(
            exchange_pb2.CreatePartnerRequest(
                partner_id=PARTNER,
                partner=exchange_pb2.Partner(
                    kind=exchange_pb2.PROSECUTOR,
                    country="BE",
                    signing_certificate_pem=(
                        state / "pki" / "envelope" / f"{PARTNER}.pem"
                    ).read_text(),
                    send_types=["report_acknowledged"],
                    receive_types=["report_submitted", "bench_notice"],
                ),
            )
        )


async def _delivered(database: Database) -> int:
    async with ExchangeTransaction(database.sessions) as tx:
        query = select(func.count()).where(
            DeliveryRow.state == DeliveryState.DELIVERED.value  # type: ignore[arg-type]
        )
        return int((await tx.session.exec(query)).one()[0])


async def _end_to_end_rate(database: Database, payload: bytes) -> float:
    before = await _delivered(database)
    started = time.perf_counter()
    # Written as the domains write theirs (reports, fines): rows gathered in a unit of
    # Writes and committed by the group committer, 500 to a transaction.
    for start in range(0, E2E_MESSAGES, 500):
        writes = Writes()
        outbox = PlainOutbox(writes)
        for i in range(start, start + 500):
            await outbox.add(OutgoingMessage(PARTNER, "bench_notice", payload, f"b/{i}"))
        await database.group.commit(writes)
    while await _delivered(database) < before + E2E_MESSAGES:  # noqa: ASYNC110 - polls a DB
        await asyncio.sleep(0.02)
    return E2E_MESSAGES / (time.perf_counter() - started)


def _report_name(xml: bytes) -> str:
    root = etree.fromstring(xml)
    found = {etree.QName(c).localname: c.text or "" for c in root}
    return f"{found.get('Name', '')}@{found.get('Version', '')}"


async def _latencies(
    port: int, state: Path, receipts: dict[str, float], rate: int
) -> tuple[list[float], int]:
    """Submit at a steady `rate`; returns the receipt latencies and the failed calls."""
    credentials = channel_credentials(state / "pki", "officer-1001")
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
        stub = reports_pb2_grpc.ReportServiceStub(channel)
        names = []
        semaphore = asyncio.Semaphore(32)

        async def prepare(_: int) -> None:
            async with semaphore:
                created = await stub.CreateReport(
                    pb.CreateReportRequest(report=_draft(), request_id=str(uuid.uuid4()))
                )
                await stub.SignReport(pb.SignReportRequest(name=created.name))
                names.append(created.name)

        await asyncio.gather(*(prepare(i) for i in range(rate * RATE_SECONDS)))
        submitted: dict[str, float] = {}
        calls = []

        async def timed(name: str) -> float:
            started = time.perf_counter()
            await stub.SubmitReport(pb.SubmitReportRequest(name=name))
            return time.perf_counter() - started

        started = time.perf_counter()
        for i, name in enumerate(names):
            # A steady schedule, not a burst: submission i leaves at i / rate seconds.
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            submitted[f"{name}@1"] = time.perf_counter()
            calls.append(asyncio.ensure_future(timed(name)))
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:
            print(f"{len(failed)} submissions failed, e.g. {failed[0]!r}"[:300])
        answered = sorted(o for o in outcomes if isinstance(o, float))
        if answered:
            # Where the time goes: the call itself, the rest is relay and partner.
            p50, p99 = statistics.median(answered), answered[int(len(answered) * 0.99) - 1]
            print(
                f"SubmitReport call at {rate}/s: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
            )
        deadline = time.perf_counter() + 60
        while len([n for n in submitted if n in receipts]) < len(submitted):
            if time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.05)
        return [receipts[n] - t for n, t in submitted.items() if n in receipts], len(failed)


async def _run(
    state: Path, server: NatsServer, port: int, database_url: str
) -> tuple[float, float, dict[int, tuple[list[float], int]]]:
    await _register(port, state)
    client = await _partner(server, state)
    receipts: dict[str, float] = {}

    async def handle(received: Received) -> Answer:
        if received.type == "report_submitted":
            # Receipt time: the receipt is published right after the batch is handled.
            receipts[_report_name(received.payload)] = time.perf_counter()
        return Answer.accept()

    stop = asyncio.Event()
    listener = asyncio.create_task(partner_listen(client, handle, ProcessedLog(), stop, batch=200))
    database = Database(database_url)
    try:
        payload = b"<notice>" + b"x" * 1500 + b"</notice>"
        raw = await _raw_publish_rate(server, len(payload) + 600)
        e2e = await _end_to_end_rate(database, payload)
        print(f"end to end {e2e:,.0f} msg/s; raw publish_async {raw:,.0f} msg/s")
        latencies = {}
        for rate in (LOW_RATE, HIGH_RATE):  # the low rate first, before any backlog
            latencies[rate] = await _latencies(port, state, receipts, rate)
    finally:
        stop.set()
        await listener
        await client.close()
        await database.close()
    return e2e, raw, latencies


def _backend(backend: str, database_url: str, env: dict[str, str]) -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        with nats_with_partners(state / "nats") as server:
            env = {
                **env,
                "JUSTICE_NATS_URL": platform_url(server),
                "JUSTICE_EXCHANGE__NATS_SECRET": SECRET.decode(),
            }
            url = database_url or f"sqlite+aiosqlite:///{state / 'justice.db'}"
            with served_platform(state, env) as port:
                e2e, raw, latencies = asyncio.run(_run(state, server, port, url))
    figures = [
        Figure(
            f"exchange end to end: outbox insert -> partner receipt recorded ({backend})",
            e2e,
            "msg/s",
            "raw nats-py publish_async, same server",
            raw,
            goal=0.35,
        )
    ]
    measured, _ = latencies[LOW_RATE]
    measured.sort()
    p50 = statistics.median(measured) * 1000 if measured else float("nan")
    p99 = measured[int(len(measured) * 0.99) - 1] * 1000 if measured else float("nan")
    lost = LOW_RATE * RATE_SECONDS - len(measured)
    figures += [
        Figure(
            f"SubmitReport -> partner receipt p50 at {LOW_RATE}/s, {lost} missing ({backend})",
            p50,
            "ms",
            "p99 goal",
            P99_GOAL_MS,
        ),
        Figure(
            f"SubmitReport -> partner receipt p99 at {LOW_RATE}/s ({backend})",
            p99,
            "ms",
            "p99 goal",
            P99_GOAL_MS,
            goal=1.0,
            lower_is_better=True,
        ),
    ]
    measured, failed = latencies[HIGH_RATE]
    offered = HIGH_RATE * RATE_SECONDS
    measured.sort()
    p99 = measured[int(len(measured) * 0.99) - 1] * 1000 if measured else float("nan")
    figures += [
        Figure(
            f"SubmitReport at {HIGH_RATE}/s offered: calls that succeeded ({backend})",
            offered - failed,
            "calls",
            "calls offered",
            offered,
            goal=1.0,
        ),
        Figure(
            f"SubmitReport -> partner receipt p99 at {HIGH_RATE}/s ({backend})",
            p99,
            "ms",
            "p99 goal at 100/s",
            P99_GOAL_MS,
        ),
    ]
    for f in figures:
        print(f"{f.name}: {f.value:,.1f} {f.unit} (ratio {f.ratio:.3f} vs {f.baseline_name})")
    return figures


def main() -> list[Figure]:
    """The figures on the database `make bench` selects (JUSTICE_BENCH_DATABASE)."""
    if selected_database() != "postgres":
        return _backend("SQLite", "", {})
    figures: list[Figure] = []
    dsn = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    schema = f"bench_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError:
        print("PostgreSQL unreachable: skipping its exchange figures")
        return figures
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    try:
        figures += _backend("PostgreSQL", url, {"JUSTICE_DATABASE_URL": url})
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")
    return figures
