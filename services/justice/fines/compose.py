"""The fines domain assembled from the platform's parts: its service, its gRPC mount, its
inbound handlers for the exchange, and its deadline scheduler."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from justice.fines.api import FineApi
from justice.fines.inbound import FineInbound
from justice.fines.letter import LetterSettings, shipped_languages
from justice.fines.model import Deadlines, Tariff
from justice.fines.notice import NoticeRenderer, PdfSigner, XmlSigner
from justice.fines.ports import MessageCopies
from justice.fines.scheduler import DeadlineScheduler
from justice.fines.service import (
    FineRules,
    FineService,
    LookupPolicy,
    Partners,
)
from justice.fines.store import FineReads, FineTransaction
from justice.fines.v1 import fines_pb2, fines_pb2_grpc
from justice.platform import config
from justice.platform.db import Database, PlainReads
from justice.platform.server import Mount


@dataclass(frozen=True)
class FinesComponent:
    service: FineService
    mount: Mount
    # Registers what registers, payment providers and executing states send.
    inbound: FineInbound
    scheduler: DeadlineScheduler


def rules(f: config.FineRules) -> FineRules:
    return FineRules(
        tariff=Tariff(f.tariff, f.currency),
        deadlines=Deadlines(
            notice_days=f.notice_days,
            payment_days=f.payment_days,
            grace_days=f.grace_days,
            reminder_surcharge=f.reminder_surcharge,
            reminder_days=f.reminder_days,
            payment_order_days=f.payment_order_days,
            transfer_threshold=f.transfer_threshold,
            close_days=f.close_days,
            retention_days=f.retention_days,
        ),
        partners=Partners(
            home_country=f.home_country,
            register_prefix=f.register_partner_prefix,
            collection_prefix=f.collection_partner_prefix,
            notice_partner=f.notice_partner,
        ),
        lookup=LookupPolicy(
            timeout=timedelta(seconds=f.lookup_timeout_seconds),
            attempts=f.lookup_attempts,
            backoff=timedelta(seconds=f.lookup_backoff_seconds),
        ),
        languages=shipped_languages(),
        auto_notice=f.auto_notice,
    )


def build(
    f: config.FineRules,
    database: Database,
    plain: PlainReads,
    clock: Callable[[], datetime],
    xml_signer: XmlSigner,
    pdf_signer: PdfSigner,
    copies: MessageCopies | None = None,
    *,
    platform_id: str,
) -> FinesComponent:
    """Letters are signed with the platform's key (`platform_id`), like its envelopes.
    `plain`: the driver connections for the owner reply's reads. `copies` erases the bus's
    copies of an erased fine's messages (the exchange's)."""
    letters = NoticeRenderer(
        LetterSettings(f.issuer, f.payee_iban, f.contest_days, f.timezone),
        f.font,
        pdf_signer,
        xml_signer,
        platform_id,
        f.render_processes,
    )
    service = FineService(
        functools.partial(FineTransaction, database.sessions, database.group, FineReads(plain)),
        clock,
        rules(f),
        letters,
        copies,
        f.notice_concurrency,
    )
    mount = Mount.of(
        fines_pb2.DESCRIPTOR.services_by_name["FineService"],
        fines_pb2_grpc.add_FineServiceServicer_to_server,
        FineApi(service),
    )
    scheduler = DeadlineScheduler(service, f.scheduler_interval_seconds)
    return FinesComponent(service, mount, FineInbound(service), scheduler)
