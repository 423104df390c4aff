"""Composition root: the platform's shared parts, each domain's build function, the ports
connected (through justice.bridges), and the services mounted on one TLS server.

Three roots for three kinds of process: `build` for `justice serve` and `justice run` (every
service, or those `justice serve --service` names, with justice.peers for the rest),
`build_exchange_workers` for `justice exchange relay|inbound` (no gRPC port, no evidence),
and `evidence_sweep` for `justice evidence sweep`. Each builds only what it runs.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Collection
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy.exc import IntegrityError

from justice import bridges
from justice.access import compose as access_compose
from justice.access.service import AccessService
from justice.audit import compose as audit_compose
from justice.audit.alarms import PlatformAlarms
from justice.audit.checkpoints import NoteSigner, NoteVerifier
from justice.audit.interceptor import annotate, purpose_gate, recorder
from justice.audit.personal_data import PERSONAL_DATA_READS
from justice.custody import compose as custody_compose
from justice.devstack.demo import demo_enrolments
from justice.devstack.pki import DevPki
from justice.devstack.tsa import DevTimestampAuthority
from justice.evidence import compose as evidence_compose
from justice.evidence.service import EvidenceService, SweepSummary
from justice.exchange import compose as exchange_compose
from justice.exchange.api import ReceiptBundle
from justice.fines import compose as fines_compose
from justice.fines.ports import MessageCopies
from justice.monitoring import monitor
from justice.peers import Peers, RemoteEvidence, RemoteReports, RemoteUnits
from justice.platform.blobs import S3Blobs
from justice.platform.bus import Bus, platform_credentials
from justice.platform.config import SERVICES, MissingSetting, Settings
from justice.platform.db import Database, PlainReads, plain_reads
from justice.platform.health import DependencyHealth
from justice.platform.leadership import Leadership
from justice.platform.metrics import Metrics
from justice.platform.processes import WorkerProcesses
from justice.platform.production import refuse_development_settings
from justice.platform.rpc import error_mapping
from justice.platform.server import (
    BoundServer,
    ServerDeps,
    ServerSettings,
    ServerTls,
    create_server,
)
from justice.platform.tracing import server_spans
from justice.reports import compose as reports_compose
from justice.reports.lookup import ReportLookup
from justice.reports.service import EvidenceCatalog, ReportService
from justice.security.approvals import FourEyes
from justice.security.identity import CachedDirectory, identity
from justice.security.rules import authorisation
from justice.security.tokens import DevTokens
from justice.signing.keyed import KeyStoreSigner, signing_processes
from justice.signing.keystore import FileKeyStore, KeyStore, configured_key_store
from justice.signing.pades import PadesSigner
from justice.signing.revocation import FileRevocationSource
from justice.signing.rfc3161 import HttpTimestamper, Timestamper
from justice.signing.xades import XadesSigner, XadesVerifier


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Application:
    settings: Settings
    database: Database
    server: BoundServer
    reports: ReportService
    fines: fines_compose.FinesComponent
    audit: audit_compose.AuditComponent
    access: AccessService
    # Drop its entries after changing the registry behind the service's back.
    directory: CachedDirectory
    exchange: exchange_compose.ExchangeComponent
    custody: custody_compose.CustodyParts
    # None when no S3 endpoint is configured, or the evidence service runs apart.
    evidence: EvidenceService | None
    # The process's NATS connection; None without NATS.
    bus: Bus | None
    metrics: Metrics
    health: DependencyHealth
    # Whether this process runs the singleton work (never, if not a candidate).
    leadership: Leadership
    # Everything started or opened, closed in reverse order.
    resources: AsyncExitStack

    async def close(self) -> None:
        await self.resources.aclose()


@dataclass
class ExchangeProcess:
    exchange: exchange_compose.ExchangeComponent
    resources: AsyncExitStack

    async def close(self) -> None:
        await self.resources.aclose()


def server_settings(settings: Settings, *, reuse_port: bool = False) -> ServerSettings:
    pki = settings.pki_dir
    return ServerSettings(
        listen=settings.listen,
        tls=ServerTls(
            cert=settings.tls_cert or pki / "server.pem",
            key=settings.tls_key or pki / "server.key",
            client_ca=settings.tls_client_ca or pki / "ca.pem",
            require_client_cert=settings.require_client_cert or settings.production,
        ),
        max_message_bytes=settings.max_message_bytes,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        reuse_port=reuse_port,
    )


# -- the platform's shared parts -------------------------------------------------------------


async def _database(settings: Settings, resources: AsyncExitStack) -> Database:
    database = Database(settings.resolved_database_url())
    resources.push_async_callback(database.close)
    await database.migrate()
    return database


async def _bus(settings: Settings, resources: AsyncExitStack) -> Bus | None:
    if not settings.nats_url:
        return None
    bus = Bus(platform_credentials(settings), stream_replicas=settings.nats_stream_replicas)
    resources.push_async_callback(bus.close)
    # Refused credentials stop the start here; an outage is retried by each user.
    await bus.check()
    return bus


def _blobs(settings: Settings, resources: AsyncExitStack) -> S3Blobs | None:
    if not settings.evidence.s3_endpoint:
        return None
    blobs = S3Blobs(
        settings.evidence.s3_endpoint,
        settings.evidence.s3_access_key,
        settings.evidence.s3_secret_key.get_secret_value(),
        secure=settings.evidence.s3_secure,
    )
    resources.callback(blobs.close)
    return blobs


def _client_ca(settings: Settings) -> Path:
    """The CA client certificates are checked against; peers' server certificates too."""
    return server_settings(settings).tls.client_ca


def _trust_anchors(settings: Settings) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(_client_ca(settings).read_bytes())


def _keys(settings: Settings) -> KeyStore:
    """File keys (dev) or the HSM over PKCS#11, as settings say."""
    return configured_key_store(settings, _trust_anchors(settings))


def _envelope_keys(settings: Settings) -> FileKeyStore:
    """The P-256 keys that sign exchange envelopes (the platform's own), from the PKI."""
    return FileKeyStore(
        settings.pki_dir / "envelope", settings.key_passphrase.get_secret_value().encode()
    )


def _verifier(settings: Settings) -> XadesVerifier:
    return XadesVerifier(_trust_anchors(settings))


def xades_signer(settings: Settings, clock: Callable[[], datetime]) -> XadesSigner:
    """B-LT signatures: timestamps from the configured TSA (the dev PKI's in-process one by
    default), the CA's CRL embedded. B-B only where neither a TSA URL nor a dev TSA exists."""
    timestamper: Timestamper | None = None
    if settings.tsa_url:
        timestamper = HttpTimestamper(settings.tsa_url)
    else:
        pki = DevPki(settings.pki_dir, settings.key_passphrase.get_secret_value().encode())
        if pki.tsa_cert_path.exists() and pki.tsa_key_path.exists():
            timestamper = DevTimestampAuthority.from_files(
                pki.tsa_cert_path,
                pki.tsa_key_path,
                settings.key_passphrase.get_secret_value().encode(),
                clock=clock,
            )
    if timestamper is None:
        return XadesSigner(clock=clock)
    crl = settings.signing_crl or settings.pki_dir / "crl.pem"
    return XadesSigner(clock=clock, timestamper=timestamper, revocation=FileRevocationSource(crl))


def _signing_start(settings: Settings) -> tuple[KeyStore, XadesSigner]:
    """What a signing process builds at its start (module level: spawn pickles it by name).
    Its signatures take the real clock's time."""
    return _keys(settings), xades_signer(settings, _utc_now)


def _signing_processes(settings: Settings, resources: AsyncExitStack) -> WorkerProcesses | None:
    if not settings.signing_processes:
        return None
    processes = signing_processes(
        settings.signing_processes, functools.partial(_signing_start, settings)
    )
    processes.warm()
    resources.push_async_callback(processes.close)
    return processes


def checkpoint_settings(settings: Settings) -> audit_compose.CheckpointSettings:
    """The checkpoint key from JUSTICE_AUDIT__CHECKPOINT_KEY (PEM, under the key passphrase),
    else the dev PKI's; witnesses from JUSTICE_AUDIT__WITNESSES (vkeys)."""
    passphrase = settings.key_passphrase.get_secret_value().encode()
    if settings.audit.checkpoint_key is not None:
        key = load_pem_private_key(settings.audit.checkpoint_key.read_bytes(), password=passphrase)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("JUSTICE_AUDIT__CHECKPOINT_KEY must be an Ed25519 key")
    else:
        key = DevPki(settings.pki_dir, passphrase).checkpoint_key()
    return audit_compose.CheckpointSettings(
        signer=NoteSigner(settings.audit.origin, key),
        witnesses=[NoteVerifier.parse(vkey) for vkey in settings.audit.witnesses],
        interval_seconds=settings.audit.checkpoint_interval_seconds,
    )


def _custody(
    settings: Settings,
    database: Database,
    plain: PlainReads,
    signer: KeyStoreSigner,
    pdf_signer: PadesSigner,
    alarms: PlatformAlarms,
    clock: Callable[[], datetime],
) -> custody_compose.CustodyParts:
    return custody_compose.build(
        database,
        plain_reads=plain,
        signer=signer,
        verifier=_verifier(settings),
        pdf_signer=pdf_signer,
        four_eyes=FourEyes(clock, timedelta(seconds=settings.access.approval_ttl_seconds)),
        alerts=bridges.CustodyAlerts(alarms, clock),
        annotate=annotate,
        clock=clock,
        config=custody_compose.config_of(settings),
    )


def _fines(
    settings: Settings,
    database: Database,
    plain: PlainReads,
    clock: Callable[[], datetime],
    signer: KeyStoreSigner,
    pdf_signer: PadesSigner,
    copies: MessageCopies | None = None,
) -> fines_compose.FinesComponent:
    """Fine letters are signed as the platform, under the exchange's sender id."""
    return fines_compose.build(
        settings.fines,
        database,
        plain,
        clock,
        signer,
        pdf_signer,
        copies,
        platform_id=settings.exchange.platform_id,
    )


# -- the roots ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Worker:
    """One of the `justice serve --workers N` processes sharing a port.

    Only the first stands for leadership (justice.platform.leadership): of all such
    processes sharing a database, the leader runs the singleton background work: the
    exchange relay and inbound consumer, the personnel feed, the evidence sweeps and the
    audit log's followers (detector, stream publisher, tree, checkpoints). The others only
    serve calls, each with its own audit writer; several writers on one log are safe (see
    justice.audit.writer).
    """

    singletons: bool


async def build(
    settings: Settings,
    clock: Callable[[], datetime] = _utc_now,
    *,
    worker: Worker | None = None,
    services: Collection[str] | None = None,
) -> Application:
    """Migrate the database and build every service on one TLS server (not started).

    As one of several `justice serve --workers N` processes (`worker`), it shares the port,
    and only the first runs the singleton background work. With `services` (names from
    SERVICES) only those are mounted and run their background work; the ports they use
    reach the others over gRPC (justice.peers) unless those run here too.
    """
    resources = AsyncExitStack()
    try:
        return await _build(settings, clock, resources, worker, _selected(services))
    except BaseException:
        await resources.aclose()
        raise


def _plain_reads(database: Database, resources: AsyncExitStack) -> PlainReads:
    """Hot reads through the driver itself, beside the ORM (justice.platform.db.PlainReads)."""
    reads = plain_reads(database.url)
    resources.push_async_callback(reads.close)
    return reads


def singleton_lock(selected: Collection[str]) -> str:
    """The name of the leadership lock of processes serving `selected`."""
    return "justice-singletons:" + ",".join(sorted(selected))


def _selected(services: Collection[str] | None) -> frozenset[str]:
    if services is None:
        return frozenset(SERVICES)
    unknown = set(services) - set(SERVICES)
    if unknown:
        raise ValueError(f"unknown services {sorted(unknown)}; known: {', '.join(SERVICES)}")
    return frozenset(services)


def _catalog(
    settings: Settings, selected: frozenset[str], evidence: EvidenceService | None, peers: Peers
) -> EvidenceCatalog:
    """What reports check and share attachments through: the evidence service here, or over
    gRPC when it runs apart."""
    lifetime = timedelta(seconds=settings.evidence.share_max_seconds)
    if evidence is not None:
        return bridges.EvidenceAttachments(evidence, lifetime)
    if "evidence" in selected or "reports" not in selected:
        # No S3 (the embedded default without one), or no report is signed here.
        return bridges.NoEvidence()
    return RemoteEvidence(peers, lifetime)


def _owners(
    settings: Settings,
    selected: frozenset[str],
    reports: ReportLookup,
    evidence: EvidenceService | None,
    access: AccessService,
    peers: Peers,
) -> bridges.Owners:
    """Whom the audit detector asks which unit owns a record: the owning services here, or
    over gRPC when audit runs without them. Only the detector (an audit follower) asks."""
    attached = bridges.AttachedReports(evidence) if evidence is not None else None
    if "audit" not in selected:
        return bridges.Owners(reports, attached, bridges.UnitIds(access))
    return bridges.Owners(
        reports if "reports" in selected else RemoteReports(peers),
        attached
        if "evidence" in selected
        else RemoteEvidence(peers, timedelta(seconds=settings.evidence.share_max_seconds)),
        bridges.UnitIds(access if "access" in selected else RemoteUnits(peers)),
    )


async def _build(
    settings: Settings,
    clock: Callable[[], datetime],
    resources: AsyncExitStack,
    worker: Worker | None,
    selected: frozenset[str],
) -> Application:
    # The first `--workers` process of each replica (or the only one) stands for leadership.
    candidate = worker is None or worker.singletons
    if (
        "evidence" in selected
        and selected != frozenset(SERVICES)
        and not settings.evidence.s3_endpoint
    ):
        raise MissingSetting(
            "--service evidence needs an S3 endpoint: set JUSTICE_EVIDENCE__S3_ENDPOINT"
        )
    refuse_development_settings(settings)
    database = await _database(settings, resources)
    bus = await _bus(settings, resources)
    blobs = _blobs(settings, resources)
    keys = _keys(settings)
    metrics = Metrics()
    signer = KeyStoreSigner(
        keys,
        xades_signer(settings, clock),
        metrics.observe_signing,
        _signing_processes(settings, resources),
    )

    # Channels to the services that run in other processes, opened on first use.
    peers = Peers(settings, _client_ca(settings))
    resources.push_async_callback(peers.close)

    # Reports and evidence need each other: evidence is built on the reports' lookup, and
    # reports on the evidence service.
    report_lookup = reports_compose.lookup(database)
    alarms = audit_compose.alarms(database, bus, clock)
    evidence = (
        await evidence_compose.build(
            settings.evidence,
            database,
            blobs,
            clock,
            bridges.ReportCases(report_lookup) if "reports" in selected else RemoteReports(peers),
            alarms,
            metrics.evidence_traffic,
        )
        if blobs is not None and "evidence" in selected
        else None
    )
    catalog = _catalog(settings, selected, evidence.service if evidence else None, peers)
    exchange = exchange_compose.build(
        settings.exchange, database, bus, _envelope_keys(settings), clock, background=candidate
    )
    # One set of plain driver connections for the hot reads of reports, custody and fines.
    plain = _plain_reads(database, resources)
    reports = reports_compose.build(
        settings.reports,
        database,
        signer,
        _verifier(settings),
        clock,
        catalog,
        ReceiptBundle(exchange.service),
        plain,
    )
    reports.start()
    resources.push_async_callback(reports.close)
    access = access_compose.build(settings.access, database, bus, clock)
    if candidate and not settings.production:
        await _enrol_demo(access.service)
    owners = _owners(
        settings,
        selected,
        report_lookup,
        evidence.service if evidence else None,
        access.service,
        peers,
    )
    audit = audit_compose.build(
        settings.audit,
        database,
        bus,
        signer,
        clock,
        owners.unit_of,
        checkpoint_settings(settings),
        plain,
    )
    # One PAdES signer for seizure receipts and fine letters.
    pdf_signer = PadesSigner(keys)
    custody = _custody(settings, database, plain, signer, pdf_signer, alarms, clock)
    reports.inbound.register(exchange.dispatcher)
    custody.register(exchange.dispatcher)
    fines = _fines(settings, database, plain, clock, signer, pdf_signer, exchange.stream_erasure)
    resources.push_async_callback(fines.service.close)
    fines.inbound.register(exchange.dispatcher)

    tokens = None
    if settings.access.dev_tokens and not settings.production:
        tokens = DevTokens.from_file(
            settings.pki_dir / "token.key", timedelta(seconds=settings.access.dev_token_max_seconds)
        )
    mounts = [
        part.mount
        for name, part in (
            ("reports", reports),
            ("audit", audit),
            ("access", access),
            ("exchange", exchange),
            ("custody", custody),
            ("fines", fines),
        )
        if name in selected
    ]
    if evidence is not None:
        mounts.append(evidence.mount)
    server = create_server(
        server_settings(settings, reuse_port=worker is not None),
        ServerDeps(
            mounts=mounts,
            # The audit recorder sits inside identity (it names the caller) and outside
            # authorisation (it records PERMISSION_DENIED); the purpose gate sits inside
            # authorisation, so an unauthorised caller hears PERMISSION_DENIED first.
            around=[
                # The call's span first, so every line logged in the call carries its ids.
                server_spans(),
                # Outermost but the span, so it counts the status code the client hears.
                metrics.around(),
                error_mapping(),
                identity(access.directory, clock, tokens),
                recorder(audit.writer, clock),
                authorisation(),
                purpose_gate(PERSONAL_DATA_READS),
            ],
        ),
    )

    # Every process writes its own calls' audit records; the singleton work (the log's
    # followers, the relay, feeds, sweeps, schedulers) runs in the one process of the
    # deployment that leads (justice.platform.leadership): replicas on one PostgreSQL would
    # otherwise each run it (two Merkle tails racing on one tree).
    audit.start(followers=False)
    resources.push_async_callback(audit.close)

    async def lead(work: AsyncExitStack) -> None:
        if "audit" in selected:
            audit.start_followers()
            work.push_async_callback(audit.stop_followers)
        if "exchange" in selected:
            _start_workers(exchange, settings, work)
            if settings.exchange.inbound:
                fines.service.warm_letters()  # owner replies arrive here: letters follow
        if "access" in selected and access.feed is not None:
            await access.feed.start()
            work.push_async_callback(access.feed.stop)
        if "custody" in selected:
            overdue = asyncio.create_task(custody.maintain(settings.custody.overdue_sweep_seconds))
            work.push_async_callback(_cancel, [overdue])
        if evidence is not None:
            evidence.start()
            work.push_async_callback(evidence.close)
        if "fines" in selected and settings.fines.scheduler_interval_seconds:
            fines.scheduler.start()
            work.push_async_callback(fines.scheduler.stop)

    # One leader per selection: each `--service` Deployment runs its own services' work.
    lock = singleton_lock(selected)
    leadership = Leadership(database.url, lock, lead, changed=metrics.leader.set)
    if candidate:
        await leadership.start()
        resources.push_async_callback(leadership.close)
    health, watching = monitor(
        settings,
        metrics,
        server,
        database,
        exchange.service,
        bus,
        audit.service,
        endpoints=candidate,
    )
    resources.push_async_callback(_cancel, watching)
    return Application(
        settings=settings,
        database=database,
        server=server,
        reports=reports.service,
        fines=fines,
        audit=audit,
        access=access.service,
        directory=access.directory,
        exchange=exchange,
        custody=custody,
        evidence=evidence.service if evidence is not None else None,
        bus=bus,
        metrics=metrics,
        health=health,
        leadership=leadership,
        resources=resources,
    )


async def _enrol_demo(access: AccessService) -> None:
    """Enrol the dev principals; replicas starting together may race to insert the same
    ones, and the loser's second pass finds them there."""
    for attempt in range(3):
        try:
            await access.enrol(demo_enrolments())
            return
        except IntegrityError:
            if attempt == 2:
                raise


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _start_workers(
    part: exchange_compose.ExchangeComponent, settings: Settings, resources: AsyncExitStack
) -> None:
    if part.workers is not None:
        part.workers.start()
        resources.push_async_callback(part.workers.stop, settings.shutdown_grace_seconds)


async def build_exchange_workers(
    settings: Settings, clock: Callable[[], datetime] = _utc_now
) -> ExchangeProcess:
    """The exchange's relay and/or inbound consumer (as `exchange.relay`/`exchange.inbound`
    say) with the domains' inbound handlers: no gRPC port, no evidence, no audit trail."""
    resources = AsyncExitStack()
    try:
        database = await _database(settings, resources)
        bus = await _bus(settings, resources)
        if bus is None:
            raise RuntimeError("no NATS configured (JUSTICE_NATS_URL)")
        exchange = exchange_compose.build(
            settings.exchange, database, bus, _envelope_keys(settings), clock
        )
        if settings.exchange.inbound:
            # Partners' answers about reports and custody decisions; none touches evidence.
            keys = _keys(settings)
            signer = KeyStoreSigner(keys, xades_signer(settings, clock))
            reports = reports_compose.build(
                settings.reports, database, signer, _verifier(settings), clock, bridges.NoEvidence()
            )
            reports.inbound.register(exchange.dispatcher)
            alarms = audit_compose.alarms(database, bus, clock)
            pdf_signer = PadesSigner(keys)
            plain = _plain_reads(database, resources)
            custody = _custody(settings, database, plain, signer, pdf_signer, alarms, clock)
            custody.register(exchange.dispatcher)
            fines = _fines(settings, database, plain, clock, signer, pdf_signer)
            resources.push_async_callback(fines.service.close)
            fines.inbound.register(exchange.dispatcher)
            fines.service.warm_letters()
        _start_workers(exchange, settings, resources)
    except BaseException:
        await resources.aclose()
        raise
    return ExchangeProcess(exchange, resources)


async def evidence_sweep(settings: Settings) -> SweepSummary:
    """One integrity sweep outside the server (`justice evidence sweep`)."""
    async with AsyncExitStack() as resources:
        database = await _database(settings, resources)
        blobs = _blobs(settings, resources)
        if blobs is None:
            raise RuntimeError("no S3 endpoint configured (JUSTICE_EVIDENCE__S3_ENDPOINT)")
        part = await evidence_compose.build(
            settings.evidence, database, blobs, _utc_now, bridges.NoCases()
        )
        return await part.service.sweep()


async def migrate(settings: Settings) -> None:
    """`justice migrate`: the schema migrations build() runs first, as a job of their own."""
    async with AsyncExitStack() as resources:
        await _database(settings, resources)


async def bootstrap_storage(settings: Settings) -> None:
    """`justice bootstrap-storage`: the evidence buckets build() makes sure of, as a job."""
    async with AsyncExitStack() as resources:
        blobs = _blobs(settings, resources)
        if blobs is None:
            raise RuntimeError("no S3 endpoint configured (JUSTICE_EVIDENCE__S3_ENDPOINT)")
        await evidence_compose.storage(blobs, evidence_compose.evidence_config(settings.evidence))
