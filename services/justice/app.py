"""Composition root: the platform's shared parts, each domain's build function, the ports
connected (through justice.bridges), and the services mounted on one TLS server.

Three roots for three kinds of process: `build` for `justice serve` and `justice run`,
`build_exchange_workers` for `justice exchange relay|inbound` (no gRPC port, no evidence),
and `evidence_sweep` for `justice evidence sweep`. Each builds only what it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509

from justice import bridges
from justice.access import compose as access_compose
from justice.access.service import AccessService
from justice.audit import compose as audit_compose
from justice.audit.interceptor import purpose_gate, recorder
from justice.audit.personal_data import PERSONAL_DATA_READS
from justice.devstack.demo import demo_enrolments
from justice.evidence import compose as evidence_compose
from justice.evidence.service import EvidenceService, SweepSummary
from justice.exchange import compose as exchange_compose
from justice.fines import compose as fines_compose
from justice.monitoring import monitor
from justice.platform.blobs import S3Blobs
from justice.platform.bus import Bus, platform_credentials
from justice.platform.config import Settings
from justice.platform.db import Database
from justice.platform.health import DependencyHealth
from justice.platform.metrics import Metrics
from justice.platform.production import refuse_development_settings
from justice.platform.rpc import error_mapping
from justice.platform.server import (
    BoundServer,
    ServerDeps,
    ServerSettings,
    ServerTls,
    create_server,
)
from justice.reports import compose as reports_compose
from justice.reports.service import ReportService
from justice.security.identity import CachedDirectory, identity
from justice.security.rules import authorisation
from justice.security.tokens import DevTokens
from justice.signing.keyed import KeyStoreSigner
from justice.signing.keystore import KeyStore, configured_key_store
from justice.signing.pades import PadesSigner
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
    # None when no S3 endpoint is configured: then no evidence service is mounted.
    evidence: EvidenceService | None
    # The process's NATS connection; None without NATS.
    bus: Bus | None
    metrics: Metrics
    health: DependencyHealth
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


def server_settings(settings: Settings) -> ServerSettings:
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
    bus = Bus(platform_credentials(settings))
    resources.push_async_callback(bus.close)
    # Refused credentials stop the start here; an outage is retried by each user.
    await bus.check()
    return bus


def _blobs(settings: Settings, resources: AsyncExitStack) -> S3Blobs | None:
    if not settings.s3_endpoint:
        return None
    blobs = S3Blobs(
        settings.s3_endpoint,
        settings.s3_access_key,
        settings.s3_secret_key.get_secret_value(),
        secure=settings.s3_secure,
    )
    resources.callback(blobs.close)
    return blobs


def _trust_anchors(settings: Settings) -> list[x509.Certificate]:
    client_ca = server_settings(settings).tls.client_ca
    return x509.load_pem_x509_certificates(client_ca.read_bytes())


def _keys(settings: Settings) -> KeyStore:
    """File keys (dev) or the HSM over PKCS#11, as settings say."""
    return configured_key_store(settings, _trust_anchors(settings))


def _verifier(settings: Settings) -> XadesVerifier:
    return XadesVerifier(_trust_anchors(settings))


# -- the roots ---------------------------------------------------------------------------------


async def build(settings: Settings, clock: Callable[[], datetime] = _utc_now) -> Application:
    """Migrate the database and build every service on one TLS server (not started)."""
    resources = AsyncExitStack()
    try:
        return await _build(settings, clock, resources)
    except BaseException:
        await resources.aclose()
        raise


async def _build(
    settings: Settings, clock: Callable[[], datetime], resources: AsyncExitStack
) -> Application:
    refuse_development_settings(settings)
    database = await _database(settings, resources)
    bus = await _bus(settings, resources)
    blobs = _blobs(settings, resources)
    keys = _keys(settings)
    metrics = Metrics()
    signer = KeyStoreSigner(keys, XadesSigner(clock=clock), metrics.observe_signing)

    # Reports and evidence need each other: evidence is built on the reports' lookup, and
    # reports on the evidence service.
    report_lookup = reports_compose.lookup(database)
    evidence = (
        await evidence_compose.build(
            settings,
            database,
            blobs,
            clock,
            bridges.ReportCases(report_lookup),
            audit_compose.alarms(database, bus, clock),
            metrics.evidence_traffic,
        )
        if blobs is not None
        else None
    )
    catalog = (
        bridges.EvidenceAttachments(
            evidence.service, timedelta(seconds=settings.evidence_share_max_seconds)
        )
        if evidence is not None
        else bridges.NoEvidence()
    )
    reports = reports_compose.build(settings, database, signer, _verifier(settings), clock, catalog)
    access = access_compose.build(settings, database, bus, clock)
    if not settings.production:
        await access.service.enrol(demo_enrolments())
    owners = bridges.Owners(
        report_lookup,
        evidence.service if evidence is not None else None,
        bridges.UnitIds(access.service),
    )
    audit = audit_compose.build(settings, database, bus, signer, clock, owners.unit_of)
    exchange = exchange_compose.build(settings, database, bus, keys, clock)
    reports.inbound.register(exchange.dispatcher)
    fines = fines_compose.build(settings, database, clock, signer, PadesSigner(keys))
    fines.inbound.register(exchange.dispatcher)

    tokens = None
    if settings.dev_tokens and not settings.production:
        tokens = DevTokens.from_file(
            settings.pki_dir / "token.key", timedelta(seconds=settings.dev_token_max_seconds)
        )
    mounts = [reports.mount, audit.mount, access.mount, exchange.mount, fines.mount]
    if evidence is not None:
        mounts.append(evidence.mount)
    server = create_server(
        server_settings(settings),
        ServerDeps(
            mounts=mounts,
            # The audit recorder sits inside identity (it names the caller) and outside
            # authorisation (it records PERMISSION_DENIED); the purpose gate sits inside
            # authorisation, so an unauthorised caller hears PERMISSION_DENIED first.
            around=[
                # Outermost, so it counts the status code the client hears.
                metrics.around(),
                error_mapping(),
                identity(access.directory, clock, tokens),
                recorder(audit.writer, clock),
                authorisation(),
                purpose_gate(PERSONAL_DATA_READS),
            ],
        ),
    )

    # The background work, stopped in reverse order by close().
    audit.start()
    resources.push_async_callback(audit.close)
    _start_workers(exchange, settings, resources)
    if access.feed is not None:
        await access.feed.start()
        resources.push_async_callback(access.feed.stop)
    if evidence is not None:
        evidence.start()
        resources.push_async_callback(evidence.close)
    if settings.fines.scheduler_interval_seconds:
        fines.scheduler.start()
        resources.push_async_callback(fines.scheduler.stop)
    health, watching = monitor(
        settings, metrics, server, database, exchange.service, bus, audit.service
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
        evidence=evidence.service if evidence is not None else None,
        bus=bus,
        metrics=metrics,
        health=health,
        resources=resources,
    )


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
    """The exchange's relay and/or inbound consumer (as `exchange_relay`/`exchange_inbound`
    say) with the domains' inbound handlers: no gRPC port, no evidence, no audit trail."""
    resources = AsyncExitStack()
    try:
        database = await _database(settings, resources)
        bus = await _bus(settings, resources)
        if bus is None:
            raise RuntimeError("no NATS configured (JUSTICE_NATS_URL)")
        exchange = exchange_compose.build(settings, database, bus, _keys(settings), clock)
        if settings.exchange_inbound:
            # Partners' answers about reports change reports; none of that touches evidence.
            signer = KeyStoreSigner(_keys(settings), XadesSigner(clock=clock))
            reports = reports_compose.build(
                settings, database, signer, _verifier(settings), clock, bridges.NoEvidence()
            )
            reports.inbound.register(exchange.dispatcher)
            fines = fines_compose.build(
                settings, database, clock, signer, PadesSigner(_keys(settings))
            )
            fines.inbound.register(exchange.dispatcher)
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
            raise RuntimeError("no S3 endpoint configured (JUSTICE_S3_ENDPOINT)")
        part = await evidence_compose.build(settings, database, blobs, _utc_now, bridges.NoCases())
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
            raise RuntimeError("no S3 endpoint configured (JUSTICE_S3_ENDPOINT)")
        await evidence_compose.storage(blobs, evidence_compose.evidence_config(settings))
