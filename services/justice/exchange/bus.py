"""JetStream layout for partner traffic: streams and consumers (connections: platform/bus.py).

Streams (file storage, DESIGN.md subjects):
  JUSTICE_PARTNER_INBOX   justice.v1.partner.*.inbox.>    platform -> partners
  JUSTICE_PARTNER_OUTBOX  justice.v1.partner.*.outbox.>   partners -> platform
Each partner pulls its inbox through its own durable consumer `partner-<id>`, which the
platform creates, so a partner needs no right to create consumers. The platform reads every
partner's outbox through the durable consumer `justice-inbound`.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StreamConfig

from justice.platform import bus

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


def partner_consumer(partner_id: str) -> str:
    return f"partner-{partner_id}"


def partner_inbox_prefix(partner_id: str) -> str:
    # Replies to a partner (PubAcks, pulled messages) arrive under its own prefix only.
    return f"_INBOX_{partner_id}"


def _stream(name: str, subjects: list[str], replicas: int) -> StreamConfig:
    return bus.stream_config(
        name,
        subjects,
        max_age_seconds=RETENTION_SECONDS,
        duplicate_window_seconds=DUPLICATE_WINDOW_SECONDS,
        replicas=replicas,
        max_msg_size=MAX_MESSAGE_BYTES,
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
        await bus.ensure_stream(js, config, update=True)
    await js.add_consumer(
        OUTBOX_STREAM, _durable(INBOUND_CONSUMER, "justice.v1.partner.*.outbox.>")
    )


async def ensure_partner_consumer(js: JetStreamContext, partner_id: str) -> None:
    await js.add_consumer(
        INBOX_STREAM,
        _durable(partner_consumer(partner_id), f"justice.v1.partner.{partner_id}.inbox.>"),
    )


def _durable(name: str, filter_subject: str) -> ConsumerConfig:
    return bus.durable(
        name, filter_subject, ack_wait_seconds=ACK_WAIT_SECONDS, max_ack_pending=20_000
    )
