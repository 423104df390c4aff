"""The clustered topology on loopback, and SubmitReport through it while parts of it die.

Three nats-server processes form a JetStream cluster (the platform's streams with three
replicas); PostgreSQL; two `justice serve` replicas (no workers of their own) addressed in
turn; two `justice exchange relay` processes; one `justice exchange inbound`; a partner (the
SDK) that answers each message with a signed receipt. During the submissions one nats-server
node, one serve replica and one relay are killed with SIGKILL. Used by
tests/e2e/test_cluster_kill.py (200 reports) and bench_cluster.py (5,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import nats.errors
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import select

from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.devstack.supervised import LOOPBACK, free_tcp_port, free_tcp_ports
from justice.exchange.bus import INBOX_STREAM, OUTBOX_STREAM
from justice.exchange.model import DeliveryState
from justice.exchange.nats_config import PLATFORM_USER, derive_password, render_authorization
from justice.exchange.store import DeliveryRow, ExchangeTransaction
from justice.partner.client import Answer, PartnerClient, PartnerConfig, ProcessedLog, Received
from justice.partner.client import listen as partner_listen
from justice.platform.bus import Bus, NatsCredentials
from justice.platform.db import Database
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from justice.signing.keystore import FileKeyStore
from tests.benchmarks.bench_signing import _draft
from tests.benchmarks.platform_process import PASSPHRASE, channel_credentials
from tests.eventually import eventually
from tests.exchange_env import PARTNERS, SECRET, partner_credentials, partner_record

PARTNER = "prosecutor-antwerp"
REPLICAS = 3
# Every stream the platform creates.
STREAMS = (INBOX_STREAM, OUTBOX_STREAM, "JUSTICE_AUDIT", "JUSTICE_ACCESS_EVENTS")
# Calls in flight at once, spread over the serve replicas.
IN_FLIGHT = 16
# Short, so that the killed relay's claimed rows go out again soon.
LEASE_SECONDS = 3
DELIVERED = DeliveryState.DELIVERED.value
# What a call may meet while a replica or a node dies: worth trying again elsewhere.
RETRIED = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}


@contextmanager
def nats_cluster(store: Path, nodes: int = 3, extra: str = "") -> Iterator[list[NatsServer]]:
    """`nodes` nats-servers forming one JetStream cluster on loopback; stopped afterwards."""
    routes = free_tcp_ports(nodes)
    urls = ", ".join(f'"nats-route://{LOOPBACK}:{port}"' for port in routes)
    servers = [
        NatsServer(
            store / f"n{i}",
            server_name=f"n{i}",  # a cluster needs each node named apart
            config_text_extra=extra
            + f'cluster {{\n  name: "justice"\n  listen: "{LOOPBACK}:{port}"\n'
            f"  routes: [{urls}]\n}}\n",
        )
        for i, port in enumerate(routes)
    ]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready(timeout=30)
        yield servers
    finally:
        for server in servers:
            server.stop()


@dataclass
class Topology:
    nats: list[NatsServer]
    serve: list[subprocess.Popen[bytes]]
    ports: list[int]
    relays: list[subprocess.Popen[bytes]]
    inbound: subprocess.Popen[bytes]
    pki: DevPki
    database_url: str


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL one process this run started (by its pid) and reap it."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            _kill(process)


@asynccontextmanager
async def clustered_platform(state: Path, database_url: str) -> AsyncIterator[Topology]:
    """The whole topology on `database_url` (an empty, migrated schema with the partner
    registered), both replicas serving; every process started here is stopped, by pid, on
    the way out."""
    pki = DevPki(state / "pki", PASSPHRASE.encode())
    pki.ensure()
    with ExitStack() as stack:
        nats = stack.enter_context(
            nats_cluster(state / "nats", extra=render_authorization(PARTNERS, SECRET))
        )
        logs = state / "logs"
        logs.mkdir()

        def launch(
            name: str, node: NatsServer, args: list[str], **env: str
        ) -> subprocess.Popen[bytes]:
            environment = {
                **os.environ,
                "JUSTICE_STATE_DIR": str(state / name),
                "JUSTICE_PKI_ROOT": str(pki.root),
                "JUSTICE_DATABASE_URL": database_url,
                "JUSTICE_KEY_PASSPHRASE": PASSPHRASE,
                "JUSTICE_NATS_URL": node.url,
                "JUSTICE_NATS_USER": PLATFORM_USER,
                "JUSTICE_NATS_PASSWORD": derive_password(SECRET, PLATFORM_USER),
                "JUSTICE_EXCHANGE__NATS_SECRET": SECRET.decode(),
                "JUSTICE_NATS_STREAM_REPLICAS": str(REPLICAS),
                "JUSTICE_EXCHANGE__RELAY_LEASE_SECONDS": str(LEASE_SECONDS),
                "JUSTICE_SHUTDOWN_GRACE_SECONDS": "1",
                **env,
            }
            with (logs / f"{name}.log").open("ab") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "justice", *args],
                    env=environment,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            stack.callback(_stop, process)
            return process

        def replica(i: int, port: int) -> subprocess.Popen[bytes]:
            return launch(
                f"serve{i}",
                nats[i],
                ["serve"],
                JUSTICE_LISTEN=f"127.0.0.1:{port}",
                JUSTICE_EXCHANGE__RELAY="false",
                JUSTICE_EXCHANGE__INBOUND="false",
            )

        # The replicas and workers talk to nodes 0 and 1; node 2, which holds a replica of
        # every stream (and may lead some), is the one that dies.
        ports = [free_tcp_port(), free_tcp_port()]
        first = replica(0, ports[0])
        relays = [launch(f"relay{i}", nats[i], ["exchange", "relay"]) for i in range(2)]
        inbound = launch("inbound", nats[1], ["exchange", "inbound"])
        # The second replica starts once the first serves: two `justice serve` seeding the
        # dev directory at once collide on its unique keys.
        await wait_serving(pki, ports[0], first)
        second = replica(1, ports[1])
        await wait_serving(pki, ports[1], second)
        yield Topology(nats, [first, second], ports, relays, inbound, pki, database_url)


async def wait_serving(
    pki: DevPki, port: int, process: subprocess.Popen[bytes], within: float = 300
) -> None:
    """The replica answers health SERVING (generous: Python processes start slowly on a
    busy machine)."""
    credentials = channel_credentials(pki.root, "officer-1001")
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def up() -> bool:
            assert process.poll() is None, f"justice serve exited with {process.returncode}"
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
            except grpc.aio.AioRpcError:
                return False
            return answer.status == health_pb2.HealthCheckResponse.SERVING

        await eventually(up, within=within, what=f"justice serve on {port}")


async def prepare_database(database_url: str, pki_root: Path) -> None:
    """Migrate once (the replicas then find the schema at head) and register the partner,
    so that the workers create its consumer as they connect."""
    pki = DevPki(pki_root, PASSPHRASE.encode())
    pki.ensure()
    database = Database(database_url)
    try:
        await database.migrate()
        async with ExchangeTransaction(database.sessions) as tx:
            await tx.partners.add(partner_record(pki, PARTNER))
            await tx.commit()
    finally:
        await database.close()


@dataclass
class Outcome:
    # Reports whose SubmitReport answered OK ("reports/{id}@{version}").
    ok: set[str] = field(default_factory=set)
    # Submitted by a call whose answer was lost: its retry found the report submitted.
    unanswered: set[str] = field(default_factory=set)
    retries: int = 0
    # Per report, how many times the partner handled a message about it.
    at_partner: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


async def _partner(topology: Topology, outcome: Outcome) -> tuple[PartnerClient, Callable]:
    keys = FileKeyStore(topology.pki.envelope_dir, PASSPHRASE.encode())
    client = await PartnerClient.connect(
        PartnerConfig(PARTNER, partner_credentials(topology.nats[0], PARTNER)),
        keys.identity(PARTNER),
        keys.identity("justice-server").certificate,
        x509.load_pem_x509_certificates(topology.pki.ca_path.read_bytes()),
    )

    async def handle(received: Received) -> Answer:
        if received.type == "report_submitted":
            outcome.at_partner[received.id] += 1
        return Answer.accept()

    return client, handle


async def _signed(stubs: list[reports_pb2_grpc.ReportServiceStub], count: int) -> list[pb.Report]:
    semaphore = asyncio.Semaphore(IN_FLIGHT)
    signed: list[pb.Report] = []

    async def one(i: int) -> None:
        stub = stubs[i % len(stubs)]
        async with semaphore:
            created = await stub.CreateReport(
                pb.CreateReportRequest(report=_draft(), request_id=str(uuid.uuid4())), timeout=60
            )
            signed.append(await stub.SignReport(pb.SignReportRequest(name=created.name)))

    await asyncio.gather(*(one(i) for i in range(count)))
    return signed


async def _submit_all(
    stubs: list[reports_pb2_grpc.ReportServiceStub],
    alive: list[bool],
    reports: list[pb.Report],
    outcome: Outcome,
    on_progress: Callable[[int], Awaitable[None]],
) -> None:
    semaphore = asyncio.Semaphore(IN_FLIGHT)
    done = 0

    async def one(i: int, report: pb.Report) -> None:
        nonlocal done
        ref = f"{report.name}@{report.version}"
        async with semaphore:
            for attempt in range(60):
                # In turn over the replicas still up; a retry goes to the next one.
                live = [stub for stub, up in zip(stubs, alive, strict=True) if up]
                stub = live[(i + attempt) % len(live)]
                try:
                    await stub.SubmitReport(pb.SubmitReportRequest(name=report.name), timeout=15)
                    outcome.ok.add(ref)
                    break
                except grpc.aio.AioRpcError as error:
                    if error.code() == grpc.StatusCode.FAILED_PRECONDITION and attempt:
                        # The same report again: an earlier attempt committed, unanswered.
                        outcome.unanswered.add(ref)
                        break
                    if error.code() not in RETRIED:
                        raise
                    outcome.retries += 1
                    await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"{ref} never submitted")
        done += 1
        await on_progress(done)

    await asyncio.gather(*(one(i, r) for i, r in enumerate(reports)))


async def _delivery_states(database: Database, refs: set[str]) -> Counter[str]:
    """Per report, the delivery rows of its submission, by state."""
    async with ExchangeTransaction(database.sessions) as tx:
        rows = (
            await tx.session.exec(
                select(DeliveryRow.subject_ref, DeliveryRow.state, DeliveryRow.id).where(
                    DeliveryRow.message_type == "report_submitted"  # type: ignore[arg-type]
                )
            )
        ).all()
    return Counter((ref, state) for ref, state, _ in rows if ref in refs)


async def delivery_ids(database: Database) -> dict[str, str]:
    """Delivery (envelope) id -> the report it carries."""
    async with ExchangeTransaction(database.sessions) as tx:
        rows = (
            await tx.session.exec(
                select(DeliveryRow.id, DeliveryRow.subject_ref).where(
                    DeliveryRow.message_type == "report_submitted"  # type: ignore[arg-type]
                )
            )
        ).all()
    return {delivery_id: ref for delivery_id, ref in rows}


async def run_with_kills(topology: Topology, reports: int, within: float) -> Outcome:
    """Sign `reports` reports, submit them while one node, one replica and one relay die,
    and wait (up to `within` s) until every submitted report has its receipt."""
    outcome = Outcome()
    credentials = channel_credentials(topology.pki.root, "officer-1001")
    channels = [grpc.aio.secure_channel(f"localhost:{p}", credentials) for p in topology.ports]
    stubs = [reports_pb2_grpc.ReportServiceStub(c) for c in channels]
    alive = [True, True]
    client, handle = await _partner(topology, outcome)
    stop = asyncio.Event()
    listener = asyncio.create_task(partner_listen(client, handle, ProcessedLog(), stop, batch=200))
    database = Database(topology.database_url)
    try:
        signed = await _signed(stubs, reports)

        async def kill_on_schedule(done: int) -> None:
            # A fifth in: a nats-server node; two fifths: a serve replica; three: a relay.
            if done == reports // 5:
                topology.nats[2].kill()
            elif done == 2 * reports // 5:
                alive[1] = False
                _kill(topology.serve[1])
            elif done == 3 * reports // 5:
                _kill(topology.relays[0])

        started = time.monotonic()
        await _submit_all(stubs, alive, signed, outcome, kill_on_schedule)
        submitted = outcome.ok | outcome.unanswered
        deadline = time.monotonic() + within
        while True:
            states = await _delivery_states(database, submitted)
            delivered = sum(n for (_, state), n in states.items() if state == DELIVERED)
            if delivered >= len(submitted) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        outcome.seconds = time.monotonic() - started
        # Late duplicates would come now, if any: one more look at the partner's side.
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(listener, 10)
        await client.close()
        await database.close()
        for channel in channels:
            await channel.close()
    return outcome


async def stream_replicas(topology: Topology) -> dict[str, tuple[int, int]]:
    """Per stream: its configured replicas and the peers the cluster reports holding it."""
    bus = Bus(
        NatsCredentials(topology.nats[0].url, PLATFORM_USER, derive_password(SECRET, PLATFORM_USER))
    )
    try:
        js = await bus.jetstream()
        found = {}
        for stream in STREAMS:
            # After a kill the stream may still be electing its leader: a loaded machine
            # left the audit stream's first request unanswered for 5 s.
            for attempt in range(6):
                try:
                    info = await js.stream_info(stream)
                    break
                except nats.errors.TimeoutError:
                    if attempt == 5:
                        raise
            peers = 1 + len(info.cluster.replicas or []) if info.cluster else 0
            found[stream] = (info.config.num_replicas or 0, peers)
        return found
    finally:
        await bus.close()


async def assert_exactly_once(topology: Topology, outcome: Outcome, reports: int) -> None:
    """Every report submitted (answered OK, or found done by its retry) has one delivery,
    DELIVERED (its receipt came back), the partner handled it once, the kills happened, and
    every stream reports three replicas."""
    submitted = outcome.ok | outcome.unanswered
    assert len(submitted) == reports
    assert outcome.ok, "no call answered OK"
    database = Database(topology.database_url)
    try:
        states = await _delivery_states(database, submitted)
        carried = await delivery_ids(database)
    finally:
        await database.close()
    assert Counter(ref for ref, _ in states.elements()) == {ref: 1 for ref in submitted}
    assert {ref for (ref, state), _ in states.items() if state == DELIVERED} == submitted
    at_partner: Counter[str] = Counter()
    for envelope_id, times in outcome.at_partner.items():
        at_partner[carried.get(envelope_id, f"unknown:{envelope_id}")] += times
    assert at_partner == {ref: 1 for ref in submitted}
    assert topology.serve[1].poll() is not None
    assert topology.relays[0].poll() is not None
    assert not topology.nats[2].running
    replicas = await stream_replicas(topology)
    assert replicas == {stream: (REPLICAS, REPLICAS) for stream in STREAMS}
