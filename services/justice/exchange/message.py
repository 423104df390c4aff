"""What a domain service hands to the exchange to send to a partner."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

# A NATS subject token: the partner id and message type become parts of subjects.
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

# The message type of signed receipts; the exchange itself sends and consumes them.
RECEIPT = "receipt"


def is_subject_token(value: str) -> bool:
    return bool(_TOKEN.match(value))


def inbox_subject(partner_id: str, message_type: str) -> str:
    return f"justice.v1.partner.{partner_id}.inbox.{message_type}"


def outbox_subject(partner_id: str, message_type: str) -> str:
    return f"justice.v1.partner.{partner_id}.outbox.{message_type}"


@dataclass(frozen=True)
class Link:
    """Large content (evidence) travels as a presigned link, never inside a message."""

    name: str
    url: str
    sha256: str
    size_bytes: int
    media_type: str = "application/octet-stream"


@dataclass(frozen=True)
class OutgoingMessage:
    recipient: str  # partner id
    message_type: str  # e.g. "report_submitted"
    payload: bytes
    # Names the domain object the message is about, for delivery tracking: its resource
    # name, optionally followed by @ and a version ("items/{id}@{sequence}:{head}").
    subject_ref: str
    links: tuple[Link, ...] = ()
    # Envelope id this message answers (receipts, replies).
    in_reply_to: str = ""

    @property
    def subject(self) -> str:
        return inbox_subject(self.recipient, self.message_type)

    @property
    def resource(self) -> str:
        """The resource name the message is about: subject_ref up to its first @."""
        return self.subject_ref.partition("@")[0]

    @property
    def expects_receipt(self) -> bool:
        # Receipts are never receipted, or two parties would answer each other forever.
        return self.message_type != RECEIPT


class OutboxWriter(Protocol):
    """The outbox as a domain service writes it, inside its own transaction."""

    async def add(self, message: OutgoingMessage) -> None: ...


class Inbox(Protocol):
    """A domain's processed keys, for effects that must apply once."""

    async def claim(self, key: str) -> bool:
        """True the first time `key` is claimed; commits with the transaction's effect."""
