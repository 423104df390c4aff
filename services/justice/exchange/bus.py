"""JetStream layout for partner traffic: streams, consumers, and how to connect.

Streams (file storage, DESIGN.md subjects):
  JUSTICE_PARTNER_INBOX   justice.v1.partner.*.inbox.>    platform -> partners
  JUSTICE_PARTNER_OUTBOX  justice.v1.partner.*.outbox.>   partners -> platform
Each partner pulls its inbox through its own durable consumer `partner-<id>`, which the
platform creates, so a partner needs no right to create consumers. The platform reads every
partner's outbox through the durable consumer `justice-inbound`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

log = logging.getLogger(__name__)

INBOX_STREAM = "JUSTICE_PARTNER_INBOX"
OUTBOX_STREAM = "JUSTICE_PARTNER_OUTBOX"
INBOUND_CONSUMER = "justice-inbound"
# Evidence travels as presigned links, so a message is a report at most.
MAX_MESSAGE_BYTES = 1024 * 1024
# Long enough to cover a relay restart; older re-publishes are caught by receivers'
# idempotency by envelope id.
DUPLICATE_WINDOW_SECONDS = 15 * 60.0
RETENTION_SECONDS = 30 * 24 * 3600.0
# A delivery the consumer could not finish is offered again after this.
ACK_WAIT_SECONDS = 10.0

# Transient failures of a JetStream call while the server is down or restarting.
NATS_UNAVAILABLE: tuple[type[BaseException], ...] = (
    nats.errors.Error,
    nats.js.errors.Error,
    asyncio.TimeoutError,
    OSError,
)


def partner_consumer(partner_id: str) -> str:
    return f"partner-{partner_id}"


def partner_inbox_prefix(partner_id: str) -> str:
    # Replies to a partner (PubAcks, pulled messages) arrive under its own prefix only.
    return f"_INBOX_{partner_id}"


@dataclass(frozen=True)
class NatsCredentials:
    url: str
    user: str = ""
    password: str = ""
    inbox_prefix: str = "_INBOX"


async def connect(
    credentials: NatsCredentials,
    *,
    name: str,
    on_error: Callable[[Exception], Awaitable[None]] | None = None,
    connect_timeout: float = 2.0,
) -> NatsClient:
    """Connect with endless reconnection; the first connection attempt may fail."""

    async def report(error: Exception) -> None:
        if on_error is not None:
            await on_error(error)
        else:
            log.debug("nats %s: %s", name, error)

    options: dict[str, Any] = {
        "servers": [credentials.url],
        "name": name,
        "connect_timeout": connect_timeout,
        "reconnect_time_wait": 0.25,
        "max_reconnect_attempts": -1,
        "allow_reconnect": True,
        "inbox_prefix": credentials.inbox_prefix,
        "error_cb": report,
    }
    if credentials.user:
        options["user"] = credentials.user
        options["password"] = credentials.password
    return await nats.connect(**options)


def _stream(name: str, subjects: list[str], replicas: int) -> StreamConfig:
    return StreamConfig(
        name=name,
        subjects=subjects,
        num_replicas=replicas,
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_msg_size=MAX_MESSAGE_BYTES,
        max_age=RETENTION_SECONDS,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )


async def ensure_streams(js: JetStreamContext, replicas: int = 1) -> None:
    """Create or update both partner streams and the inbound consumer (idempotent).

    `replicas` is 3 on a JetStream cluster of three: an update to the stream would
    otherwise scale an operator's R3 stream down to one copy.
    """
    for config in (
        _stream(INBOX_STREAM, ["justice.v1.partner.*.inbox.>"], replicas),
        _stream(OUTBOX_STREAM, ["justice.v1.partner.*.outbox.>"], replicas),
    ):
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await js.update_stream(config)
    await js.add_consumer(
        OUTBOX_STREAM, _durable(INBOUND_CONSUMER, "justice.v1.partner.*.outbox.>")
    )


async def ensure_partner_consumer(js: JetStreamContext, partner_id: str) -> None:
    await js.add_consumer(
        INBOX_STREAM,
        _durable(partner_consumer(partner_id), f"justice.v1.partner.{partner_id}.inbox.>"),
    )


def _durable(name: str, filter_subject: str) -> ConsumerConfig:
    # Explicit acks: a message counts as handled only once its effect is committed.
    return ConsumerConfig(
        durable_name=name,
        name=name,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_SECONDS,
        filter_subject=filter_subject,
        max_ack_pending=20_000,
    )
