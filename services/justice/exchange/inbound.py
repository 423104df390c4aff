"""Inbound: every partner's outbox, validated, then dispatched by message type.

The consumer knows no domain. The composition root registers a handler per message type
(`Dispatcher.register`) and, per outgoing message type, what to do when a partner's
receipt settles it (`Dispatcher.on_settled`). Handlers are the owning services' own
functions; they raise a JusticeError to refuse a message, which the partner then sees as
a REJECTED receipt with that reason.

Exactly-once effects: the exchange's processed-ids row for an envelope commits together
with its receipt and delivery updates; a domain handler claims the envelope id in its own
transaction, together with its own effect. A redelivered message therefore finds both
claims taken and changes nothing. A message that cannot be read, is not signed by its
sender, or is not allowed gets a REJECTED receipt and a dead letter, and is acknowledged:
it never blocks or crashes the consumer. A handler's ABORTED (a concurrent change) or
UNAVAILABLE is not a refusal: the message is offered again.

The consumer fetches a batch and handles it in lanes, one per sender, several at once
(`InboundConsumer`): on the fines benchmark one sender's message no longer waits behind
another's database round trips.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from justice.exchange import envelope as envelopes
from justice.exchange.bus import INBOUND_CONSUMER, OUTBOX_STREAM
from justice.exchange.envelope import EnvelopeRefused, Problem
from justice.exchange.message import RECEIPT, Link, OutgoingMessage
from justice.exchange.model import DeadLetter, DeliveryState, Direction
from justice.exchange.registry import PartnerDirectory
from justice.exchange.store import ExchangeTransaction, InboundWrites, time_ordered_uuid
from justice.exchange.v1 import exchange_pb2 as pb
from justice.platform import tracing
from justice.platform.errors import (
    Aborted,
    FieldViolation,
    InvalidArgument,
    JusticeError,
    Unavailable,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboundMessage:
    """A verified message from a partner, as handlers see it."""

    id: str
    type: str
    sender: str
    created_at: datetime
    payload: bytes
    in_reply_to: str = ""
    links: tuple[Link, ...] = ()

    @property
    def key(self) -> str:
        """What a handler claims in its inbox: envelope ids are unique per sender."""
        return processed_key(self.sender, self.id)


@dataclass(frozen=True)
class Settlement:
    """A partner's receipt settled one of our outgoing messages."""

    message_id: str
    message_type: str
    partner: str
    subject_ref: str
    accepted: bool
    reason: str
    detail: str
    receipt_id: str

    @property
    def key(self) -> str:
        # One settlement per message, however many receipts a partner sends for it.
        return f"settled:{self.message_id}"


def processed_key(sender: str, envelope_id: str) -> str:
    return f"{sender}/{envelope_id}"


M = TypeVar("M", bound=Message)


def parse_payload(kind: type[M], data: bytes) -> M:
    """A handler's payload as the protobuf message its type promises, or INVALID_ARGUMENT
    (which the partner sees as a REJECTED receipt)."""
    message = kind()
    try:
        message.ParseFromString(data)
    except DecodeError:
        raise InvalidArgument.of(
            [FieldViolation("payload", f"not a {kind.DESCRIPTOR.full_name}")]
        ) from None
    return message


Handler = Callable[[InboundMessage], Awaitable[None]]
# Called once per receipt with every settlement of its message type: one transaction for a
# whole batch instead of one per message.
SettleHandler = Callable[[Sequence[Settlement]], Awaitable[None]]


class Dispatcher:
    """Message type -> handler; outgoing message type -> settlement handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._settled: dict[str, SettleHandler] = {}

    def register(self, message_type: str, handler: Handler) -> None:
        if message_type == RECEIPT or message_type in self._handlers:
            raise ValueError(f"a handler for {message_type!r} exists already")
        self._handlers[message_type] = handler

    def on_settled(self, message_type: str, handler: SettleHandler) -> None:
        if message_type in self._settled:
            raise ValueError(f"a settlement handler for {message_type!r} exists already")
        self._settled[message_type] = handler

    def handler(self, message_type: str) -> Handler | None:
        return self._handlers.get(message_type)

    def settlement(self, message_type: str) -> SettleHandler | None:
        return self._settled.get(message_type)

    @property
    def message_types(self) -> frozenset[str]:
        return frozenset(self._handlers)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def receipt_payload(envelope_id: str, accepted: bool, reason: str = "", detail: str = "") -> bytes:
    status = pb.ReceiptEntry.ACCEPTED if accepted else pb.ReceiptEntry.REJECTED
    entry = pb.ReceiptEntry(envelope_id=envelope_id, status=status, reason=reason, detail=detail)
    return pb.Receipt(entries=[entry]).SerializeToString()


def _subject_parts(subject: str) -> tuple[str, str]:
    # justice.v1.partner.<partner>.outbox.<type>: NATS permissions make the partner token
    # the authenticated publisher.
    parts = subject.split(".")
    if len(parts) != 6 or parts[:3] != ["justice", "v1", "partner"] or parts[4] != "outbox":
        return "", ""
    return parts[3], parts[5]


class InboundProcessor:
    def __init__(
        self,
        uow: Callable[[], ExchangeTransaction],
        closing: InboundWrites,
        directory: PartnerDirectory,
        dispatcher: Dispatcher,
        platform_id: str,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._uow = uow
        self._closing = closing
        self._directory = directory
        self._dispatcher = dispatcher
        self._platform_id = platform_id
        self._clock = clock

    async def processed_among(self, keys: Collection[str]) -> set[str]:
        """Which of these envelopes (`processed_key`) were processed: one read transaction
        for a fetched batch instead of one per message."""
        if not keys:
            return set()
        async with self._uow() as tx:
            return await tx.processed.seen_among(keys)

    async def process(
        self,
        data: bytes,
        subject: str,
        stream_seq: int,
        *,
        checked: bool = False,
        parsed: pb.Envelope | EnvelopeRefused | None = None,
    ) -> str:
        """Apply one message from a partner's outbox; returns the outcome (for logs/tests).
        `checked`: the caller found it unprocessed (`processed_among`) just before, so the
        read is not repeated; the claims still keep a duplicate from acting twice.
        `parsed`: what `envelopes.parse(data)` gave the caller (routing reads it first).

        Raises only for transient trouble (database down), so the message is offered again.
        """
        sender, subject_type = _subject_parts(subject)
        try:
            if parsed is None:
                parsed = _parsed(data)
            if isinstance(parsed, EnvelopeRefused):
                raise parsed
            envelope = parsed
            if envelope.sender != sender:
                raise EnvelopeRefused(
                    Problem.SENDER_MISMATCH, f"published by {sender}, claims {envelope.sender}"
                )
            if envelope.type != subject_type:
                raise EnvelopeRefused(Problem.MALFORMED, "the subject names another type")
            if envelope.recipient != self._platform_id:
                raise EnvelopeRefused(Problem.WRONG_RECIPIENT, f"addressed to {envelope.recipient}")
            known = await self._directory.get(sender)
            if known is None:
                raise EnvelopeRefused(Problem.UNKNOWN_SENDER, f"{sender} is not registered")
            if not known.partner.may_send(envelope.type):
                raise EnvelopeRefused(
                    Problem.TYPE_NOT_ALLOWED, f"{sender} may not send {envelope.type}"
                )
            envelopes.verify(envelope, known.public_key)
        except EnvelopeRefused as refused:
            # Unreadable messages are keyed by their stream position: still processed once.
            key = f"seq:{stream_seq}"
            envelope_id = in_reply_to = ""
            if refused.problem not in (Problem.MALFORMED, Problem.TOO_LARGE):
                assert isinstance(parsed, pb.Envelope)  # read, but not acceptable
                envelope_id, in_reply_to = parsed.id, parsed.in_reply_to
                key = processed_key(sender, envelope_id)
            await self._refuse(
                key,
                sender,
                envelope_id,
                subject_type,
                refused.problem.value,
                refused.detail,
                data,
                in_reply_to,
            )
            return refused.problem.value
        if not checked:
            async with self._uow() as tx:
                if await tx.processed.seen(processed_key(sender, envelope.id)):
                    return "DUPLICATE"
        if envelope.type == RECEIPT:
            return await self._receipt(envelope, data, known.partner.certificate_pem)
        return await self._business(envelope, data)

    async def _business(self, envelope: pb.Envelope, data: bytes) -> str:
        handler = self._dispatcher.handler(envelope.type)
        key = processed_key(envelope.sender, envelope.id)
        if handler is None:
            await self._refuse(
                key,
                envelope.sender,
                envelope.id,
                envelope.type,
                "UNSUPPORTED_MESSAGE_TYPE",
                f"the platform handles no {envelope.type}",
                data,
                envelope.in_reply_to,
            )
            return "UNSUPPORTED_MESSAGE_TYPE"
        message = InboundMessage(
            id=envelope.id,
            type=envelope.type,
            sender=envelope.sender,
            created_at=envelope.created_at.ToDatetime(tzinfo=UTC),
            payload=envelope.payload,
            in_reply_to=envelope.in_reply_to,
            links=tuple(
                Link(x.name, x.url, x.sha256, x.size_bytes, x.media_type) for x in envelope.links
            ),
        )
        try:
            await handler(message)
        except (Aborted, Unavailable):
            # A concurrent change or a dependency down: not the partner's fault. Raised, so
            # the consumer offers the message again instead of refusing it.
            raise
        except JusticeError as refusal:
            await self._refuse(
                key,
                envelope.sender,
                envelope.id,
                envelope.type,
                refusal.reason,
                refusal.message,
                data,
                envelope.in_reply_to,
            )
            return refusal.reason
        await self._closing.answered(key, self._receipt_to(envelope.sender, envelope.id, True))
        return "ACCEPTED"

    async def _receipt(self, envelope: pb.Envelope, data: bytes, certificate_pem: str) -> str:
        receipt = pb.Receipt()
        try:
            receipt.ParseFromString(envelope.payload)
        except DecodeError:
            await self._refuse(
                processed_key(envelope.sender, envelope.id),
                envelope.sender,
                envelope.id,
                RECEIPT,
                Problem.MALFORMED.value,
                "the payload is not a justice.exchange.v1.Receipt",
                data,
                envelope.in_reply_to,
            )
            return Problem.MALFORMED.value
        entries = {e.envelope_id: e for e in receipt.entries}
        async with self._uow() as tx:
            deliveries = await tx.deliveries.get_many(list(entries))
        # The domain first, one call per message type, idempotent by its own claims; the
        # exchange's claim below then seals the receipt as processed.
        settlements: dict[str, list[Settlement]] = {}
        for delivery in deliveries:
            if delivery.recipient != envelope.sender:
                continue
            entry = entries[delivery.id]
            settlements.setdefault(delivery.message_type, []).append(
                Settlement(
                    message_id=delivery.id,
                    message_type=delivery.message_type,
                    partner=envelope.sender,
                    subject_ref=delivery.subject_ref,
                    accepted=entry.status == pb.ReceiptEntry.ACCEPTED,
                    reason=entry.reason,
                    detail=entry.detail,
                    receipt_id=envelope.id,
                )
            )
        for message_type, batch in settlements.items():
            settle = self._dispatcher.settlement(message_type)
            if settle is not None:
                await settle(batch)
        now = self._clock()
        key = processed_key(envelope.sender, envelope.id)
        rejected = [e for e in entries.values() if e.status != pb.ReceiptEntry.ACCEPTED]
        if not rejected:  # the usual receipt: one group-committed hop
            claimed = await self._closing.delivered(
                key,
                envelope.sender,
                envelope.id,
                data,
                certificate_pem,
                list(entries),
                now,
            )
            return "RECEIPT" if claimed else "DUPLICATE"
        async with self._uow() as tx:
            if not await tx.processed.claim(key):
                return "DUPLICATE"
            # Kept byte for byte with the certificate it was checked against: the evidence
            # that the partner received what the deliveries below settle.
            await tx.receipts.keep(envelope.sender, envelope.id, data, certificate_pem, now)
            accepted = [i for i, e in entries.items() if e.status == pb.ReceiptEntry.ACCEPTED]
            await tx.deliveries.settle(
                accepted, envelope.sender, DeliveryState.DELIVERED, envelope.id, now
            )
            for entry in rejected:
                moved = await tx.deliveries.settle(
                    [entry.envelope_id],
                    envelope.sender,
                    DeliveryState.REJECTED,
                    envelope.id,
                    now,
                    reason=entry.reason or "REJECTED",
                    detail=entry.detail,
                )
                for delivery in moved:
                    await tx.dead_letters.add(
                        DeadLetter.outbound(
                            time_ordered_uuid(),
                            delivery,
                            entry.reason or "REJECTED",
                            entry.detail,
                            now,
                        )
                    )
            await tx.commit()
        return "RECEIPT"

    async def poison(self, data: bytes, subject: str, stream_seq: int, error: str) -> None:
        """Give up on a message that keeps failing: dead letter and REJECTED receipt."""
        sender, subject_type = _subject_parts(subject)
        try:
            unverified = envelopes.parse(data)
            envelope_id, in_reply_to = unverified.id, unverified.in_reply_to
        except EnvelopeRefused:
            envelope_id = in_reply_to = ""
        await self._refuse(
            processed_key(sender, envelope_id) if envelope_id else f"seq:{stream_seq}",
            sender,
            envelope_id,
            subject_type,
            "PROCESSING_FAILED",
            error,
            data,
            in_reply_to,
        )

    def _receipt_to(
        self, partner: str, envelope_id: str, accepted: bool, reason: str = "", detail: str = ""
    ) -> OutgoingMessage:
        return OutgoingMessage(
            recipient=partner,
            message_type=RECEIPT,
            payload=receipt_payload(envelope_id, accepted, reason, detail),
            subject_ref=f"deliveries/{envelope_id}" if envelope_id else "",
            in_reply_to=envelope_id,
        )

    async def _refuse(
        self,
        key: str,
        sender: str,
        envelope_id: str,
        message_type: str,
        reason: str,
        detail: str,
        data: bytes,
        in_reply_to: str = "",
    ) -> None:
        log.warning("inbound: refused a %s from %s: %s", message_type or "?", sender or "?", reason)
        async with self._uow() as tx:
            if not await tx.processed.claim(key):
                return
            await tx.dead_letters.add(
                DeadLetter(
                    id=time_ordered_uuid(),
                    direction=Direction.INBOUND,
                    envelope_id=envelope_id or key,
                    partner=sender,
                    message_type=message_type,
                    reason=reason,
                    detail=detail,
                    create_time=self._clock(),
                    data=data,
                    # A reply is about what it answers: erased with it (SqlOutbox.forget).
                    resource=await tx.outbox.resource_of(in_reply_to),
                )
            )
            # A receipt needs an addressee the registry knows; the subject names it.
            if sender and await tx.partners.get(sender) is not None:
                await tx.outbox.add(self._receipt_to(sender, envelope_id, False, reason, detail))
            await tx.commit()


def _parsed(data: bytes) -> pb.Envelope | EnvelopeRefused:
    try:
        return envelopes.parse(data)
    except EnvelopeRefused as refused:
        return refused


@dataclass(frozen=True)
class _Route:
    lane: tuple[str, str]
    key: str  # processed_key, "" when the envelope cannot be read
    parsed: pb.Envelope | EnvelopeRefused  # handed to the processor: parsed once


def _route(msg: Msg) -> _Route:
    """A reply (an owner lookup's answer) is about the one message of ours it answers: its
    lane is that message's, so the replies of one partner to different requests run side
    by side, and copies of one reply share a lane. Everything else a partner sends (and
    its receipts) stays in its sender's lane, in stream order."""
    sender, message_type = _subject_parts(msg.subject)
    envelope = _parsed(msg.data)
    if isinstance(envelope, EnvelopeRefused):
        # The processor refuses it, in the sender's lane.
        return _Route((sender, ""), "", envelope)
    key = processed_key(sender, envelope.id)
    if message_type != RECEIPT and envelope.in_reply_to:
        return _Route((sender, envelope.in_reply_to), key, envelope)
    return _Route((sender, ""), key, envelope)


# Immediate attempts again after a concurrent change, before the redelivery delay.
_CONFLICT_RETRIES = 2


class InboundConsumer:
    """Pulls `justice-inbound` a batch at a time and hands each message to the processor,
    then acks it.

    A fetch takes up to `batch` messages. They are split into lanes, one per sender (the
    subject's partner token) and one per request a reply answers (`_route`): a lane's
    messages are processed one after another in stream order, as one consumer did before,
    and up to `concurrency` lanes at once, so one partner's slow or failing message does
    not hold the others' and their database round trips overlap. Each
    message is acked on its own, after its processing committed; one that fails transiently
    is nak-ed (offered again) without holding its lane's later messages, and after
    `max_attempts` it is dead-lettered. Exactly-once does not depend on the order: the
    claims (processed ids) make a redelivered or duplicated message change nothing.
    """

    def __init__(
        self,
        processor: InboundProcessor,
        *,
        batch: int = 128,
        concurrency: int = 8,
        max_attempts: int = 5,
        retry_delay_seconds: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._processor = processor
        self._batch = batch
        self._slots = asyncio.Semaphore(concurrency)
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay_seconds
        self.processed = 0

    async def handle(
        self,
        msg: Msg,
        *,
        checked: bool = False,
        parsed: pb.Envelope | EnvelopeRefused | None = None,
    ) -> None:
        # The partner's headers continue the trace its message (a receipt) answers.
        _, message_type = _subject_parts(msg.subject)
        with tracing.continued(
            f"inbound {message_type or '?'}", msg.headers, kind=tracing.SpanKind.CONSUMER
        ):
            await self._handle(msg, checked, parsed)

    async def handle_batch(self, msgs: Sequence[Msg]) -> None:
        """One fetched batch: the ones already processed found in one query and acked, the
        others in lanes (`_route`), `concurrency` lanes at a time."""
        routes = [_route(msg) for msg in msgs]
        keys = Counter(r.key for r in routes if r.key)
        done = await self._processor.processed_among(list(keys))
        lanes: dict[tuple[str, str], list[tuple[Msg, bool, _Route]]] = {}
        for msg, route in zip(msgs, routes, strict=True):
            if route.key in done:
                await msg.ack()  # a redelivery of what was applied: nothing to do
                self.processed += 1
                continue
            # A copy of a message in the same batch is checked again when its turn comes.
            checked = bool(route.key) and keys[route.key] == 1
            lanes.setdefault(route.lane, []).append((msg, checked, route))
        await asyncio.gather(*(self._lane(lane) for lane in lanes.values()))

    async def _lane(self, msgs: Sequence[tuple[Msg, bool, _Route]]) -> None:
        async with self._slots:
            for msg, checked, route in msgs:
                await self.handle(msg, checked=checked, parsed=route.parsed)

    async def _handle(
        self, msg: Msg, checked: bool, parsed: pb.Envelope | EnvelopeRefused | None
    ) -> None:
        meta = msg.metadata
        try:
            for attempt in range(1 + _CONFLICT_RETRIES):
                try:
                    await self._processor.process(
                        msg.data, msg.subject, meta.sequence.stream, checked=checked, parsed=parsed
                    )
                    break
                except Aborted:
                    # A concurrent change won, e.g. a partner's receipt and its answer about
                    # one report version in two lanes: read it again now, not a redelivery
                    # delay later. Nothing of the aborted attempt was written.
                    if attempt == _CONFLICT_RETRIES:
                        raise
                    checked = False
        except Exception as error:
            if meta.num_delivered >= self._max_attempts:
                log.error("inbound: giving up on stream seq %d: %s", meta.sequence.stream, error)
                await self._processor.poison(
                    msg.data, msg.subject, meta.sequence.stream, type(error).__name__
                )
            else:
                log.warning("inbound: will retry stream seq %d: %s", meta.sequence.stream, error)
                await msg.nak(delay=self._retry_delay)
                return
        await msg.ack()
        self.processed += 1

    async def run(
        self, jetstream: Callable[[], Awaitable[JetStreamContext]], stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            try:
                js = await jetstream()
                subscription = await js.pull_subscribe_bind(
                    durable=INBOUND_CONSUMER, stream=OUTBOX_STREAM
                )
                while not stop.is_set():
                    try:
                        msgs = await subscription.fetch(self._batch, timeout=1.0)
                    except TimeoutError:
                        continue
                    await self.handle_batch(msgs)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("inbound consumer: %s: %s; retrying", type(error).__name__, error)
                await asyncio.sleep(0.5)
