"""Fines over a real exchange: the partners a fine talks to, their listeners (the register
simulator, the mail house, the executing state), a settable clock and offence builders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from justice.app import Application
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.exchange.model import PartnerKind
from justice.fines.model import Detection, DetectionSource, Offence, Speed
from justice.fines.service import (
    MESSAGE_TYPE_LOOKUP,
    MESSAGE_TYPE_LOOKUP_REPLY,
    MESSAGE_TYPE_NOTICE,
    MESSAGE_TYPE_PAYMENT,
    MESSAGE_TYPE_PAYMENT_AFTER_TRANSFER,
    MESSAGE_TYPE_TRANSFER,
    MESSAGE_TYPE_TRANSFER_RESULT,
)
from justice.fines.v1 import fines_pb2 as pb
from justice.partner.client import Answer, PartnerClient, ProcessedLog, Received, listen
from justice.partner.register import VehicleRegisterSimulator
from tests.exchange_env import partner_record, partner_side

REGISTERS = ("vehicle-register-nl", "vehicle-register-lu", "vehicle-register-pl")
# Registered on the exchange, but nobody answers for it: lookups time out.
SILENT_REGISTER = "vehicle-register-de"
MAIL_HOUSE = "fine-post"
BANK = "payment-bank"
EXECUTING_NL = "fine-authority-nl"
PARTNER_IDS = (*REGISTERS, SILENT_REGISTER, MAIL_HOUSE, BANK, EXECUTING_NL)

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass
class Clock:
    """The platform's clock in a test: real time plus however far the test moved it."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


def offence(
    plate: str = "AB123C", country: str = "NL", *, when: datetime | None = None, **changes: Any
) -> Detection:
    detection = Detection(
        source=DetectionSource.FIXED_CAMERA,
        device_id="CAM-E19-042",
        offence_time=when or datetime.now(UTC) - timedelta(hours=2),
        place="E19 km 12, Kontich",
        offence_country="BE",
        plate=plate,
        registration_country=country,
        vehicle_category="M1",
        offence=Offence.SPEEDING,
        provision="art. 11.1 Wegverkeersreglement",
        speed=Speed(measured=137, corrected=130, allowed=120),
        evidence=("evidence/photo-1",),
    )
    return replace(detection, **changes)


def ensure_partner_keys(pki: DevPki) -> None:
    """Each test partner's signing identity and its P-256 envelope key (what it signs with)."""
    for partner_id in PARTNER_IDS:
        cert, key = pki.signing_paths(partner_id)
        if not (cert.exists() and key.exists()):
            pki.issue_signing(partner_id, "Test", partner_id)
        cert, key = pki.envelope_paths(partner_id)
        if not (cert.exists() and key.exists()):
            pki.issue_envelope(partner_id, "Test", partner_id)


async def register_partners(app: Application, pki: DevPki) -> None:
    ensure_partner_keys(pki)
    kinds: dict[str, tuple[PartnerKind, frozenset[str], frozenset[str]]] = {
        MAIL_HOUSE: (PartnerKind.FINE_AGENCY, frozenset(), frozenset({MESSAGE_TYPE_NOTICE})),
        BANK: (PartnerKind.FINE_AGENCY, frozenset({MESSAGE_TYPE_PAYMENT}), frozenset()),
        EXECUTING_NL: (
            PartnerKind.FOREIGN_AUTHORITY,
            frozenset({MESSAGE_TYPE_TRANSFER_RESULT}),
            frozenset({MESSAGE_TYPE_TRANSFER, MESSAGE_TYPE_PAYMENT_AFTER_TRANSFER}),
        ),
    }
    for register in (*REGISTERS, SILENT_REGISTER):
        kinds[register] = (
            PartnerKind.VEHICLE_REGISTER,
            frozenset({MESSAGE_TYPE_LOOKUP_REPLY}),
            frozenset({MESSAGE_TYPE_LOOKUP}),
        )
    for partner_id, (kind, send, receive) in kinds.items():
        await app.exchange.service.create_partner(
            partner_record(pki, partner_id, kind=kind, send=send, receive=receive)
        )


@dataclass
class Recorder:
    """A partner that accepts everything and keeps what it received, by type."""

    received: dict[str, list[bytes]] = field(default_factory=dict)

    async def handle(self, message: Received) -> Answer:
        self.received.setdefault(message.type, []).append(message.payload)
        return Answer.accept()

    def notices(self) -> list[pb.FineNotice]:
        return [
            pb.FineNotice.FromString(payload)
            for payload in self.received.get(MESSAGE_TYPE_NOTICE, [])
        ]


@dataclass
class FinePartners:
    register: VehicleRegisterSimulator
    mail: Recorder
    executing: Recorder
    bank: PartnerClient
    executing_client: PartnerClient


@asynccontextmanager
async def running_partners(
    pki: DevPki, nats: NatsServer, *, answer_twice: bool = False
) -> AsyncIterator[FinePartners]:
    """The register simulator for every register, the mail house and the executing state
    listening over NATS; the bank as a client that sends payments."""
    side = partner_side(pki)
    register = VehicleRegisterSimulator(answer_twice=answer_twice)
    mail, executing = Recorder(), Recorder()
    stop = asyncio.Event()
    clients: list[PartnerClient] = []
    tasks = []
    for partner_id, handle in [
        *((r, register.handle) for r in REGISTERS),
        (MAIL_HOUSE, mail.handle),
        (EXECUTING_NL, executing.handle),
    ]:
        client = await side.connect(nats, partner_id)
        clients.append(client)
        tasks.append(asyncio.create_task(listen(client, handle, ProcessedLog(), stop)))
    bank = await side.connect(nats, BANK)
    clients.append(bank)
    try:
        yield FinePartners(register, mail, executing, bank, clients[-2])
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for client in clients:
            await client.close()
