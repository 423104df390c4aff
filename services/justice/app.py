"""Composition root: the one place that picks adapters and mounts the services."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509

from justice.access.api import AccessApi
from justice.access.events import PersonnelFeed
from justice.access.service import AccessService, Enrolment
from justice.access.store import AccessTransaction
from justice.access.v1 import access_pb2, access_pb2_grpc
from justice.audit.api import AuditApi
from justice.audit.interceptor import purpose_gate, recorder
from justice.audit.personal_data import PERSONAL_DATA_READS
from justice.audit.publisher import AuditStream
from justice.audit.trail import AuditTrail, build_trail, detection_rules
from justice.audit.v1 import audit_pb2, audit_pb2_grpc
from justice.devstack.pki import DEMO_PRINCIPALS, PARTNER_KINDS, DevPki, PrincipalKind
from justice.evidence.api import EvidenceApi
from justice.evidence.attachments import EvidenceAttachments
from justice.evidence.model import EvidenceConfig, RetentionMode, RetentionRule
from justice.evidence.service import CaseDirectory, EvidenceService, SweepSummary
from justice.evidence.store import EvidenceTransaction
from justice.evidence.v1 import evidence_pb2, evidence_pb2_grpc
from justice.exchange.api import ExchangeApi, own_deliveries_scope
from justice.exchange.bus import NatsCredentials
from justice.exchange.envelope import EnvelopeSigner
from justice.exchange.inbound import Dispatcher, InboundConsumer, InboundProcessor
from justice.exchange.message import Link
from justice.exchange.model import Partner, PartnerKind
from justice.exchange.registry import PartnerDirectory
from justice.exchange.relay import Relay, RelaySettings
from justice.exchange.service import ExchangeService
from justice.exchange.store import OUTBOX_CHANNEL, OUTBOX_WRITTEN, ExchangeTransaction
from justice.exchange.v1 import exchange_pb2, exchange_pb2_grpc
from justice.exchange.workers import ExchangeWorkers, NatsLink
from justice.platform.blobs import S3Blobs
from justice.platform.config import Settings
from justice.platform.db import Database
from justice.platform.errors import AlreadyExists, JusticeError
from justice.platform.listing import Page
from justice.platform.notify import Listener
from justice.platform.notify import supported as notifications_supported
from justice.platform.rpc import error_mapping
from justice.platform.server import (
    BoundServer,
    Mount,
    ServerDeps,
    ServerSettings,
    ServerTls,
    create_server,
)
from justice.reports.api import ReportApi
from justice.reports.inbound import ReportInbound
from justice.reports.model import Attachment, Limits
from justice.reports.service import (
    MESSAGE_TYPE_ACKNOWLEDGED,
    MESSAGE_TYPE_REJECTED,
    MESSAGE_TYPE_SUBMITTED,
    ReportQuery,
    ReportService,
    StoredEvidence,
)
from justice.reports.store import ReportTransaction
from justice.reports.v1 import reports_pb2, reports_pb2_grpc
from justice.security.approvals import FourEyes
from justice.security.identity import CachedDirectory, identity
from justice.security.principal import Role
from justice.security.rules import authorisation
from justice.security.tokens import DevTokens
from justice.signing.keyed import KeyStoreSigner
from justice.signing.keystore import FileKeyStore
from justice.signing.xades import XadesSigner, XadesVerifier


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Application:
    settings: Settings
    database: Database
    reports: ReportService
    server: BoundServer
    audit: AuditTrail
    # None when no S3 endpoint is configured: then no evidence service is mounted.
    evidence: EvidenceService | None = None
    blobs: S3Blobs | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)
    # The identity registry; set by build().
    access: AccessService | None = None
    # Drop its entries after changing the registry behind the service's back.
    directory: CachedDirectory | None = None
    personnel: PersonnelFeed | None = None
    exchange: Exchange | None = None

    async def close(self) -> None:
        if self.exchange is not None and self.exchange.workers is not None:
            await self.exchange.workers.stop(self.settings.shutdown_grace_seconds)
        if self.personnel is not None:
            await self.personnel.stop()
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        if self.blobs is not None:
            self.blobs.close()
        await self.audit.close()
        await self.database.close()


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


async def build(settings: Settings, clock: Callable[[], datetime] = _utc_now) -> Application:
    """Migrate the database and build every service on one TLS server (not started)."""
    database = Database(settings.resolved_database_url())
    await database.migrate()
    tls = server_settings(settings).tls
    trust_anchors = x509.load_pem_x509_certificates(tls.client_ca.read_bytes())
    keys = FileKeyStore(
        settings.pki_dir / "signing", settings.key_passphrase.get_secret_value().encode()
    )
    blobs, evidence = await _evidence(settings, database, clock, _ReportCases(lambda: reports))
    reports = ReportService(
        uow=lambda: ReportTransaction(database.sessions),
        signer=KeyStoreSigner(keys, XadesSigner(clock=clock)),
        verifier=XadesVerifier(trust_anchors),
        clock=clock,
        limits=Limits(narrative_max_chars=settings.narrative_max_chars),
        default_recipient=settings.default_prosecutor,
        evidence=EvidenceAttachments(
            evidence, timedelta(seconds=settings.evidence_share_max_seconds)
        )
        if evidence
        else _NoEvidenceStore(),
    )
    report_api = ReportApi(reports)
    access, directory = await _access(settings, database, clock)
    access_api = AccessApi(access, clock)
    tokens = None
    if settings.dev_tokens and not settings.production:
        tokens = DevTokens.from_file(
            settings.pki_dir / "token.key", timedelta(seconds=settings.dev_token_max_seconds)
        )
    audit = _audit_trail(
        settings,
        database,
        clock,
        KeyStoreSigner(keys, XadesSigner(clock=clock)),
        _Owners(reports, evidence, _UnitIds(access)),
    )
    audit_api = AuditApi(audit.service)
    envelope_keys = FileKeyStore(
        settings.pki_dir / "envelope", settings.key_passphrase.get_secret_value().encode()
    )
    exchange = build_exchange(
        settings, database, envelope_keys, clock, ReportInbound(reports).register
    )
    exchange_api = ExchangeApi(exchange.service, own_deliveries_scope)
    mounts = [
        Mount(
            reports_pb2.DESCRIPTOR.services_by_name["ReportService"].full_name,
            lambda server: reports_pb2_grpc.add_ReportServiceServicer_to_server(report_api, server),
        ),
        Mount(
            audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
            lambda server: audit_pb2_grpc.add_AuditServiceServicer_to_server(audit_api, server),
        ),
        Mount(
            access_pb2.DESCRIPTOR.services_by_name["AccessService"].full_name,
            lambda server: access_pb2_grpc.add_AccessServiceServicer_to_server(access_api, server),
        ),
        Mount(
            exchange_pb2.DESCRIPTOR.services_by_name["ExchangeService"].full_name,
            lambda server: exchange_pb2_grpc.add_ExchangeServiceServicer_to_server(
                exchange_api, server
            ),
        ),
    ]
    if evidence is not None:
        evidence_api = EvidenceApi(evidence)
        mounts.append(
            Mount(
                evidence_pb2.DESCRIPTOR.services_by_name["EvidenceService"].full_name,
                lambda server: evidence_pb2_grpc.add_EvidenceServiceServicer_to_server(
                    evidence_api, server
                ),
            )
        )
    server = create_server(
        server_settings(settings),
        ServerDeps(
            mounts=mounts,
            # The audit recorder sits inside identity (it names the caller) and outside
            # authorisation (it records PERMISSION_DENIED); the purpose gate sits inside
            # authorisation, so an unauthorised caller hears PERMISSION_DENIED first.
            around=[
                error_mapping(),
                identity(directory, clock, tokens),
                recorder(audit.writer, clock),
                authorisation(),
                purpose_gate(PERSONAL_DATA_READS),
            ],
        ),
    )
    application = Application(settings, database, reports, server, audit, evidence, blobs)
    application.access, application.directory = access, directory
    application.exchange = exchange
    # The audit writer, and the detector and stream publisher following the log.
    audit.start()
    if exchange.workers is not None:
        exchange.workers.start()
    if settings.nats_url:
        application.personnel = PersonnelFeed(access, settings.nats_url)
        await application.personnel.start()
    if evidence is not None:
        application.background.append(
            asyncio.create_task(
                evidence.maintain(
                    sweep_every=settings.evidence_sweep_interval_seconds,
                    expire_every=min(300.0, settings.evidence_upload_ttl_seconds),
                )
            )
        )
    return application


@dataclass
class Exchange:
    service: ExchangeService
    dispatcher: Dispatcher
    # The relay and the inbound consumer; None without NATS or when both are off.
    workers: ExchangeWorkers | None


def build_exchange(
    settings: Settings,
    database: Database,
    envelope_keys: FileKeyStore,
    clock: Callable[[], datetime],
    register: Callable[[Dispatcher], None],
) -> Exchange:
    """The exchange: its admin service and, with NATS, its relay and inbound consumer.

    `register` adds each domain's inbound handlers; the exchange itself knows no domain.
    """

    def uow() -> ExchangeTransaction:
        return ExchangeTransaction(database.sessions)

    # The relay reads, marks and looks partners up through a small pool of its own: queued
    # behind requests waiting for the shared pool, partners' messages stalled under load.
    relay_database = None
    if settings.nats_url and settings.exchange_relay:
        relay_database = Database(database.url, pool_size=2)

    def relay_uow() -> ExchangeTransaction:
        return ExchangeTransaction((relay_database or database).sessions)

    directory = PartnerDirectory(relay_uow)
    dispatcher = Dispatcher()
    register(dispatcher)
    workers = None
    if settings.nats_url and (settings.exchange_relay or settings.exchange_inbound):

        async def partner_ids() -> list[str]:
            async with uow() as tx:
                return [p.id for p in await tx.partners.list(10_000, "")]

        link = NatsLink(
            NatsCredentials(
                settings.nats_url, settings.nats_user, settings.nats_password.get_secret_value()
            ),
            partner_ids,
        )
        relay = None
        listener = None
        if settings.exchange_relay:
            # Other processes' outbox commits wake the relay on PostgreSQL; the poll stays
            # only as a safety net there.
            if notifications_supported(database.url):
                listener = Listener(database.url, OUTBOX_CHANNEL)
            # The platform's own P-256 envelope key, loaded once.
            key = envelope_keys.identity(settings.exchange_platform_id).key
            relay = Relay(
                relay_uow,
                EnvelopeSigner(settings.exchange_platform_id, key),
                directory,
                RelaySettings(
                    batch=settings.exchange_relay_batch,
                    receipt_deadline=timedelta(seconds=settings.exchange_receipt_deadline_seconds),
                    idle_seconds=5.0 if listener else RelaySettings.idle_seconds,
                ),
                clock,
            )
            database.on_commit(OUTBOX_WRITTEN, relay.nudge)
        consumer = None
        if settings.exchange_inbound:
            processor = InboundProcessor(
                uow, directory, dispatcher, settings.exchange_platform_id, clock
            )
            consumer = InboundConsumer(processor)
        workers = ExchangeWorkers(link, relay, consumer, listener, relay_database)
    service = ExchangeService(
        uow,
        directory,
        clock,
        partner_added=workers.link.ensure_partner if workers else None,
        wake_relay=workers.relay.nudge if workers and workers.relay else None,
    )
    return Exchange(service, dispatcher, workers)


def evidence_config(settings: Settings) -> EvidenceConfig:
    return EvidenceConfig(
        bucket=settings.evidence_bucket,
        staging_bucket=settings.evidence_staging_bucket,
        retention={
            name: RetentionRule(RetentionMode(rule.mode), timedelta(days=rule.days))
            for name, rule in settings.evidence_retention.items()
        },
        default_category=settings.evidence_default_category,
        share_default=timedelta(seconds=settings.evidence_share_default_seconds),
        share_max=timedelta(seconds=settings.evidence_share_max_seconds),
        max_upload_bytes=settings.evidence_max_upload_bytes,
        max_chunk_bytes=settings.evidence_max_chunk_bytes,
        part_bytes=settings.evidence_part_bytes,
        parts_in_flight=settings.evidence_parts_in_flight,
        upload_ttl=timedelta(seconds=settings.evidence_upload_ttl_seconds),
        sign_rehash_max_bytes=settings.evidence_sign_rehash_max_bytes,
    )


async def _evidence(
    settings: Settings,
    database: Database,
    clock: Callable[[], datetime],
    cases: CaseDirectory,
) -> tuple[S3Blobs | None, EvidenceService | None]:
    """The evidence service on the configured S3, its buckets made sure of; none without S3."""
    if not settings.s3_endpoint:
        return None, None
    blobs = S3Blobs(
        settings.s3_endpoint,
        settings.s3_access_key,
        settings.s3_secret_key.get_secret_value(),
        secure=settings.s3_secure,
    )
    config = evidence_config(settings)
    try:
        await blobs.ensure_bucket(config.bucket, object_lock=True)
        await blobs.ensure_bucket(config.staging_bucket, object_lock=False)
    except BaseException:
        blobs.close()
        raise
    service = EvidenceService(
        uow=lambda: EvidenceTransaction(database.sessions),
        blobs=blobs,
        cases=cases,
        clock=clock,
        config=config,
    )
    return blobs, service


async def evidence_sweep(settings: Settings) -> SweepSummary:
    """One integrity sweep outside the server (`justice evidence sweep`)."""
    database = Database(settings.resolved_database_url())
    try:
        await database.migrate()
        blobs, evidence = await _evidence(settings, database, _utc_now, _NoCases())
        if blobs is None or evidence is None:
            raise RuntimeError("no S3 endpoint configured (JUSTICE_S3_ENDPOINT)")
        try:
            return await evidence.sweep()
        finally:
            blobs.close()
    finally:
        await database.close()


class _NoCases:
    """For tools that only read evidence: no case is known, so nothing can be uploaded."""

    async def case_known(self, case_number: str) -> bool:
        return False

    async def report_case(self, report: str) -> str | None:
        return None

    async def report_recipient(self, report: str) -> str | None:
        return None


class _ReportCases:
    """Cases as the report service knows them (evidence never reads report tables)."""

    def __init__(self, reports: Callable[[], ReportService]) -> None:
        self._reports = reports

    async def case_known(self, case_number: str) -> bool:
        query = ReportQuery(page=Page(1, ""), case_number=case_number)
        return bool(await self._reports().list(query))

    async def report_case(self, report: str) -> str | None:
        try:
            return (await self._reports().get(report)).content.case_number
        except JusticeError:
            return None

    async def report_recipient(self, report: str) -> str | None:
        try:
            return (await self._reports().get(report)).recipient or None
        except JusticeError:
            return None


class _NoEvidenceStore:
    """Without S3 no attachment can be checked, so none can be signed."""

    async def stored(self, evidence: str) -> StoredEvidence | None:
        return None

    async def links(
        self, attachments: Sequence[Attachment], recipient: str, sharer: str, purpose: str
    ) -> tuple[Link, ...]:
        return ()  # nothing was signed with attachments, so nothing is submitted with them


class _UnitIds:
    """Unit ids by what a report records as its reporting unit (the unit's display name, or
    its id), from the access registry: audit records carry unit ids."""

    def __init__(self, access: AccessService, refresh_seconds: float = 5.0) -> None:
        self._access = access
        self._refresh = refresh_seconds
        self._ids: dict[str, str] = {}
        self._loaded = -refresh_seconds

    async def id_of(self, unit: str) -> str | None:
        if unit not in self._ids and time.monotonic() - self._loaded >= self._refresh:
            ids: dict[str, str] = {}
            after = ""
            while True:
                units = await self._access.list_units(Page(500, after))
                for u in units:
                    ids[u.id] = u.id
                    ids.setdefault(u.display_name, u.id)
                if len(units) < 500:
                    break
                after = units[-1].id
            self._ids, self._loaded = ids, time.monotonic()
        return self._ids.get(unit)


class _Owners:
    """Which unit owns a record, asked of the owning service (the detector's OUTSIDE_UNIT)."""

    def __init__(
        self, reports: ReportService, evidence: EvidenceService | None, units: _UnitIds
    ) -> None:
        self._reports = reports
        self._evidence = evidence
        self._units = units

    async def unit_of(self, resource: str) -> str | None:
        try:
            if resource.startswith("evidence/") and self._evidence is not None:
                # Evidence belongs to the unit of the report it was attached to.
                resource = (await self._evidence.get(resource)).metadata.report
            if resource.startswith("reports/"):
                report = await self._reports.get(resource)
                return await self._units.id_of(report.content.reporting_unit)
        except JusticeError:
            return None
        return None


def _audit_trail(
    settings: Settings,
    database: Database,
    clock: Callable[[], datetime],
    signer: KeyStoreSigner,
    owners: _Owners,
) -> AuditTrail:
    return build_trail(
        database,
        clock=clock,
        signer=signer,
        signer_id=settings.audit_signer,
        rules=detection_rules(settings.audit_detection),
        unit_of=owners.unit_of,
        stream=AuditStream(
            settings.nats_url,
            user=settings.nats_user,
            password=settings.nats_password.get_secret_value(),
        )
        if settings.nats_url
        else None,
        batch_max=settings.audit_batch_max,
    )


async def _access(
    settings: Settings, database: Database, clock: Callable[[], datetime]
) -> tuple[AccessService, CachedDirectory]:
    """The registry every call is resolved against, seeded with the demo principals in dev."""
    invalidate: list[Callable[[], None]] = []
    access = AccessService(
        uow=lambda: AccessTransaction(database.sessions),
        four_eyes=FourEyes(clock, timedelta(seconds=settings.approval_ttl_seconds)),
        clock=clock,
        four_eyes_roles=frozenset(Role(r) for r in settings.four_eyes_roles),
        on_change=lambda: invalidate[0](),
    )
    directory = CachedDirectory(access, settings.identity_cache_seconds)
    invalidate.append(directory.invalidate)
    if not settings.production:
        await access.enrol(demo_enrolments())
    return access, directory


# Dev demo principals: the role each kind holds through its unit, and personal high roles.
_MEMBER_ROLE = {
    PrincipalKind.OFFICER: Role.REPORT_WRITER,
    PrincipalKind.PROSECUTOR: Role.PROSECUTOR,
    PrincipalKind.COURT: Role.PARTNER_AGENCY,
    PrincipalKind.FINE_AGENCY: Role.PARTNER_AGENCY,
    PrincipalKind.VEHICLE_REGISTER: Role.PARTNER_AGENCY,
    PrincipalKind.SERVICE: Role.SERVICE,
    PrincipalKind.CUSTODIAN: Role.CUSTODIAN,
    PrincipalKind.CUSTODY_SUPERVISOR: Role.CUSTODIAN,
    PrincipalKind.FINES_OFFICER: Role.FINES_OFFICER,
}
_PERSONAL_ROLE = {
    PrincipalKind.CUSTODY_SUPERVISOR: Role.CUSTODY_SUPERVISOR,
    PrincipalKind.AUDITOR: Role.AUDITOR,
    PrincipalKind.ACCESS_ADMIN: Role.ACCESS_ADMIN,
}


def demo_enrolments() -> list[Enrolment]:
    """The dev PKI's demo principals as registry entries (bootstrap grants, no four eyes)."""
    enrolments = []
    for p in DEMO_PRINCIPALS:
        partner = p.id if p.kind in PARTNER_KINDS else ""
        member = _MEMBER_ROLE.get(p.kind)
        personal = _PERSONAL_ROLE.get(p.kind)
        enrolments.append(
            Enrolment(
                user=p.id,
                agency=p.agency,
                unit=partner or re.sub(r"[^a-z0-9]+", "-", p.unit.lower()).strip("-"),
                unit_name=p.unit,
                unit_partner=partner,
                member_roles=frozenset({member} if member else ()),
                personal_roles=frozenset({personal} if personal else ()),
                service_account=p.kind is PrincipalKind.SERVICE,
            )
        )
    return enrolments


# Dev demo partners on the exchange: their kind, country, and what they send and receive.
# Only the prosecutor has message types today; the others are registered so their inboxes
# exist when their domains start sending.
_DEMO_PARTNERS = {
    PrincipalKind.PROSECUTOR: (
        PartnerKind.PROSECUTOR,
        "BE",
        frozenset({MESSAGE_TYPE_ACKNOWLEDGED, MESSAGE_TYPE_REJECTED}),
        frozenset({MESSAGE_TYPE_SUBMITTED}),
    ),
    PrincipalKind.COURT: (PartnerKind.COURT, "BE", frozenset(), frozenset()),
    PrincipalKind.FINE_AGENCY: (PartnerKind.FINE_AGENCY, "BE", frozenset(), frozenset()),
    # The demo register is the Dutch RDW.
    PrincipalKind.VEHICLE_REGISTER: (PartnerKind.VEHICLE_REGISTER, "NL", frozenset(), frozenset()),
}


async def register_demo_partners(exchange: ExchangeService, pki: DevPki) -> None:
    """Register the dev PKI's partner principals on the exchange, once."""
    now = _utc_now()
    for principal in DEMO_PRINCIPALS:
        if principal.kind not in _DEMO_PARTNERS:
            continue
        kind, country, sends, receives = _DEMO_PARTNERS[principal.kind]
        certificate, _ = pki.envelope_paths(principal.id)
        partner = Partner(
            id=principal.id,
            kind=kind,
            country=country,
            certificate_pem=certificate.read_text(),
            send_types=sends,
            receive_types=receives,
            create_time=now,
            update_time=now,
        )
        try:
            await exchange.create_partner(partner)
        except AlreadyExists:
            # A second run keeps the first's registry, moved to the P-256 envelope key.
            known = await exchange.get_partner(partner.name)
            if known.certificate_pem != partner.certificate_pem:
                known.certificate_pem = partner.certificate_pem
                await exchange.update_partner(known)
