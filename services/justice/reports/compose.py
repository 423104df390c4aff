"""The reports domain assembled from the platform's parts: its service, its gRPC mount, its
inbound handlers for the exchange, and the lookup it offers other domains."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from justice.exchange.store import processed_lookup
from justice.platform.config import ReportSettings
from justice.platform.db import Database, PlainReads
from justice.platform.notify import Announced
from justice.platform.notify import supported as notifications_supported
from justice.platform.server import Mount
from justice.reports.api import DeliveryReceipts, ReportApi
from justice.reports.inbound import ReportInbound
from justice.reports.lookup import ReportLookup
from justice.reports.model import Limits
from justice.reports.service import (
    EvidenceCatalog,
    ReportService,
    Signer,
    Verifier,
)
from justice.reports.store import (
    REPORTS_CHANGED,
    ReportTransaction,
    ReportWrites,
    SqlReportReads,
)
from justice.reports.v1 import reports_pb2, reports_pb2_grpc


@dataclass(frozen=True)
class ReportsComponent:
    service: ReportService
    mount: Mount
    # Registers what partners send about reports with the exchange's dispatcher.
    inbound: ReportInbound
    # Report changes announced to this process (PostgreSQL), so GetReport may show a version
    # it read before; started and closed with the process.
    announced: Announced | None = None

    def start(self) -> None:
        if self.announced is not None:
            self.announced.start()

    async def close(self) -> None:
        if self.announced is not None:
            await self.announced.close()


def _uow(database: Database) -> Callable[[], ReportTransaction]:
    return lambda: ReportTransaction(database.sessions)


def lookup(database: Database) -> ReportLookup:
    """The read-only port other domains use; it needs nothing the reports service needs."""
    return ReportLookup(_uow(database))


def build(
    settings: ReportSettings,
    database: Database,
    signer: Signer,
    verifier: Verifier,
    clock: Callable[[], datetime],
    evidence: EvidenceCatalog,
    receipts: DeliveryReceipts | None = None,
    plain: PlainReads | None = None,
) -> ReportsComponent:
    """`receipts` are the partners' kept receipts an export may bundle with a report;
    `plain` driver connections serve GetReport instead of the ORM, and with them the hot
    writes (SignReport, SubmitReport, partners' receipts) are group-committed
    (`ReportWrites`)."""
    reads = submissions = announced = None
    if plain is not None:
        if notifications_supported(database.url):
            announced = Announced(database.url, REPORTS_CHANGED)
            database.on_commit(REPORTS_CHANGED, announced.changed)
        reads = SqlReportReads(plain, announced=announced)
        submissions = functools.partial(
            ReportWrites, database.group, reads, processed_lookup(plain, "reports")
        )
    service = ReportService(
        uow=_uow(database),
        signer=signer,
        verifier=verifier,
        clock=clock,
        limits=Limits(narrative_max_chars=settings.narrative_max_chars),
        default_recipient=settings.default_prosecutor,
        evidence=evidence,
        reads=reads,
        submissions=submissions,
    )
    mount = Mount.of(
        reports_pb2.DESCRIPTOR.services_by_name["ReportService"],
        reports_pb2_grpc.add_ReportServiceServicer_to_server,
        ReportApi(service, lookup(database), receipts),
    )
    return ReportsComponent(service, mount, ReportInbound(service), announced)
