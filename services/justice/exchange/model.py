"""The partner registry, deliveries and dead letters: records and their rules.

Imports nothing from grpc, sqlmodel or nats.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from cryptography import x509

from justice.exchange.message import RECEIPT, is_subject_token
from justice.platform.errors import FailedPrecondition, FieldViolation, InvalidArgument
from justice.signing.identity import signer_id_of

_COUNTRY = re.compile(r"^[A-Z]{2}$")
MAX_CERTIFICATE_CHARS = 64 * 1024


class PartnerKind(enum.Enum):
    PROSECUTOR = "PROSECUTOR"
    COURT = "COURT"
    FINE_AGENCY = "FINE_AGENCY"
    VEHICLE_REGISTER = "VEHICLE_REGISTER"
    FOREIGN_AUTHORITY = "FOREIGN_AUTHORITY"
    CUSTODY_AGENCY = "CUSTODY_AGENCY"


class DeliveryState(enum.Enum):
    PENDING = "PENDING"
    PUBLISHED = "PUBLISHED"
    DELIVERED = "DELIVERED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


# Only settled-badly deliveries may be sent again.
REDELIVERABLE = frozenset({DeliveryState.REJECTED, DeliveryState.EXPIRED})


class Direction(enum.Enum):
    OUTBOUND = "OUTBOUND"
    INBOUND = "INBOUND"


def nats_user_of(partner_id: str) -> str:
    return f"partner-{partner_id}"


@dataclass
class Partner:
    id: str
    kind: PartnerKind
    country: str
    certificate_pem: str
    send_types: frozenset[str]
    receive_types: frozenset[str]
    create_time: datetime
    update_time: datetime

    @property
    def name(self) -> str:
        return f"partners/{self.id}"

    @property
    def nats_user(self) -> str:
        return nats_user_of(self.id)

    def may_send(self, message_type: str) -> bool:
        # Every partner may answer with receipts; everything else must be granted.
        return message_type == RECEIPT or message_type in self.send_types

    def may_receive(self, message_type: str) -> bool:
        return message_type == RECEIPT or message_type in self.receive_types


def _types(field_name: str, values: Iterable[str]) -> list[FieldViolation]:
    return [
        FieldViolation(f"{field_name}[{i}]", "a message type: 1-64 of a-z 0-9 _ -")
        for i, value in enumerate(values)
        if not is_subject_token(value)
    ]


def check_partner(partner: Partner) -> x509.Certificate:
    """Validates a partner record; returns its parsed signing certificate."""
    v: list[FieldViolation] = []
    if not is_subject_token(partner.id):
        v.append(FieldViolation("partner_id", "1-64 of a-z 0-9 _ -, starting with a-z or 0-9"))
    if not _COUNTRY.match(partner.country):
        v.append(FieldViolation("partner.country", "ISO 3166-1 alpha-2, e.g. BE"))
    v += _types("partner.send_types", sorted(partner.send_types))
    v += _types("partner.receive_types", sorted(partner.receive_types))
    certificate = None
    if len(partner.certificate_pem) > MAX_CERTIFICATE_CHARS:
        v.append(FieldViolation("partner.signing_certificate_pem", "too long"))
    else:
        try:
            certificate = x509.load_pem_x509_certificates(partner.certificate_pem.encode())[0]
        except (ValueError, IndexError):
            v.append(FieldViolation("partner.signing_certificate_pem", "not a PEM certificate"))
    if certificate is not None and signer_id_of(certificate) != partner.id:
        v.append(
            FieldViolation(
                "partner.signing_certificate_pem",
                "its subject serialNumber must be the partner id",
            )
        )
    if v:
        raise InvalidArgument.of(v)
    assert certificate is not None
    return certificate


@dataclass
class Delivery:
    id: str  # the envelope id
    recipient: str
    message_type: str
    subject_ref: str
    state: DeliveryState
    create_time: datetime
    attempts: int = 1
    reason: str = ""
    detail: str = ""
    publish_time: datetime | None = None
    settle_time: datetime | None = None
    deadline: datetime | None = None
    receipt: str = ""

    @property
    def name(self) -> str:
        return f"deliveries/{self.id}"

    def redeliver(self) -> None:
        if self.state not in REDELIVERABLE:
            raise FailedPrecondition(
                "NOT_REDELIVERABLE",
                f"a {self.state.value} delivery cannot be sent again",
                metadata={"state": self.state.value},
            )
        self.state = DeliveryState.PENDING
        self.attempts += 1
        self.reason = self.detail = self.receipt = ""
        self.publish_time = self.settle_time = self.deadline = None


class Addressed(Protocol):
    """An outgoing message as far as a dead letter cares (a delivery, a pending row)."""

    @property
    def id(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def message_type(self) -> str: ...


@dataclass
class DeadLetter:
    id: str
    direction: Direction
    envelope_id: str
    partner: str
    message_type: str
    reason: str
    detail: str
    create_time: datetime
    resolve_time: datetime | None = None
    # Raw inbound bytes, kept for inspection (bounded by the stream's max message size).
    data: bytes = field(default=b"", repr=False)
    # Inbound: the resource of the message of ours it replies to (erased with it), or "".
    resource: str = ""

    @property
    def name(self) -> str:
        return f"deadLetters/{self.id}"

    @classmethod
    def outbound(
        cls, letter_id: str, delivery: Addressed, reason: str, detail: str, now: datetime
    ) -> DeadLetter:
        """A message of ours that was refused, never publishable, or never answered."""
        return cls(
            id=letter_id,
            direction=Direction.OUTBOUND,
            envelope_id=delivery.id,
            partner=delivery.recipient,
            message_type=delivery.message_type,
            reason=reason,
            detail=detail,
            create_time=now,
        )


@dataclass(frozen=True)
class KeptReceipt:
    """A partner's signed receipt kept as evidence, exactly as it arrived: the Envelope bytes
    (payload and signature) and the signing certificate the platform checked it against then,
    so anyone can check it again later, offline, with the CA alone."""

    delivery: str  # the delivery (outgoing envelope id) it settled
    receipt_id: str  # the receipt's own envelope id
    partner: str
    envelope: bytes
    certificate_pem: str
    receive_time: datetime

    @property
    def name(self) -> str:
        return f"deliveries/{self.delivery}/receipt"
