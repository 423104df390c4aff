"""Partner side of the exchange: pull the inbox, verify, answer with signed receipts.

Delivery to a partner is at least once (JetStream redelivers anything not acknowledged);
`listen` makes processing exactly once by remembering every envelope id it answered in a
`ProcessedLog` and replaying the stored answer for a duplicate instead of handling it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import sqlite3
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from cryptography import x509
from lxml import etree
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from justice.exchange import envelope as envelopes
from justice.exchange.bus import INBOX_STREAM, partner_consumer
from justice.exchange.envelope import EnvelopeRefused, EnvelopeSigner, Problem
from justice.exchange.message import RECEIPT, Link, outbox_subject
from justice.exchange.v1 import exchange_pb2 as pb
from justice.platform import bus, tracing
from justice.platform.bus import NatsCredentials
from justice.platform.tracing import SpanContext
from justice.signing.identity import SigningIdentity
from justice.signing.xades import Verdict, XadesVerifier

log = logging.getLogger(__name__)

MAX_EVIDENCE_BYTES = 2 * 1024 * 1024 * 1024


@dataclass(frozen=True)
class PartnerConfig:
    partner_id: str
    nats: NatsCredentials
    platform_id: str = "justice-server"


@dataclass(frozen=True)
class Received:
    """One pulled message; `problem` is set when it failed verification."""

    msg: Msg
    envelope: pb.Envelope | None
    problem: str = ""
    detail: str = ""

    @property
    def id(self) -> str:
        return self.envelope.id if self.envelope is not None else ""

    @property
    def type(self) -> str:
        return self.envelope.type if self.envelope is not None else ""

    @property
    def payload(self) -> bytes:
        return self.envelope.payload if self.envelope is not None else b""

    @property
    def links(self) -> tuple[Link, ...]:
        if self.envelope is None:
            return ()
        return tuple(
            Link(x.name, x.url, x.sha256, x.size_bytes, x.media_type) for x in self.envelope.links
        )


@dataclass(frozen=True)
class Answer:
    """What the partner says about a message: the receipt entry, and its replies (stored in
    NATS before the message is acknowledged)."""

    accepted: bool
    reason: str = ""
    detail: str = ""
    replies: tuple[tuple[str, bytes], ...] = field(default=())

    @classmethod
    def accept(cls, *replies: tuple[str, bytes]) -> Answer:
        return cls(True, replies=tuple(replies))

    @classmethod
    def reject(cls, reason: str, detail: str = "") -> Answer:
        return cls(False, reason, detail)


class PartnerClient:
    def __init__(
        self,
        config: PartnerConfig,
        nc: NatsClient,
        signer: EnvelopeSigner,
        platform_certificate: x509.Certificate | Sequence[x509.Certificate],
        trust_anchors: Sequence[x509.Certificate],
    ) -> None:
        self.config = config
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream()
        self._signer = signer
        # Several while the platform changes keys (its RSA key, then its P-256 envelope
        # key): an envelope is the platform's if any of them verifies it.
        certificates = (
            [platform_certificate]
            if isinstance(platform_certificate, x509.Certificate)
            else list(platform_certificate)
        )
        self._platform_keys = [c.public_key() for c in certificates]
        self._xades = XadesVerifier(list(trust_anchors))
        self._subscription: JetStreamContext.PullSubscription | None = None

    @classmethod
    async def connect(
        cls,
        config: PartnerConfig,
        identity: SigningIdentity,
        platform_certificate: x509.Certificate | Sequence[x509.Certificate],
        trust_anchors: Sequence[x509.Certificate],
    ) -> Self:
        nc = await bus.connect(config.nats, name=config.partner_id)
        signer = EnvelopeSigner(config.partner_id, identity.key)
        return cls(config, nc, signer, platform_certificate, trust_anchors)

    async def close(self) -> None:
        if not self._nc.is_closed:
            await self._nc.close()

    async def pull(self, batch: int = 100, wait_seconds: float = 1.0) -> list[Received]:
        """Fetch up to `batch` messages from the inbox; each one already verified."""
        if self._subscription is None:
            # Bind only: the platform created the consumer; a partner may not create one.
            self._subscription = await self._js.pull_subscribe_bind(
                durable=partner_consumer(self.config.partner_id),
                stream=INBOX_STREAM,
                inbox_prefix=f"{self.config.nats.inbox_prefix}.".encode(),
            )
        try:
            msgs = await self._subscription.fetch(batch, timeout=wait_seconds)
        except TimeoutError:
            return []
        return [self._check(msg) for msg in msgs]

    def _check(self, msg: Msg) -> Received:
        try:
            envelope = envelopes.parse(msg.data)
        except EnvelopeRefused as refused:
            return Received(msg, None, refused.problem.value, refused.detail)
        expected = f"justice.v1.partner.{self.config.partner_id}.inbox.{envelope.type}"
        problem: tuple[Problem, str] | None = None
        if msg.subject != expected:
            problem = (Problem.MALFORMED, "the subject names another type or partner")
        elif envelope.recipient != self.config.partner_id:
            problem = (Problem.WRONG_RECIPIENT, f"addressed to {envelope.recipient}")
        elif envelope.sender != self.config.platform_id:
            problem = (Problem.SENDER_MISMATCH, f"sent by {envelope.sender}")
        if problem is None:
            problem = self._unverified(envelope)
        if problem is not None:
            return Received(msg, envelope, problem[0].value, problem[1])
        return Received(msg, envelope)

    def _unverified(self, envelope: pb.Envelope) -> tuple[Problem, str] | None:
        """None when one of the platform's keys verifies the envelope, else why not."""
        problem = (Problem.BAD_SIGNATURE, "no platform key given")
        for key in self._platform_keys:
            try:
                envelopes.verify(envelope, key)
            except EnvelopeRefused as refused:
                problem = (refused.problem, refused.detail)
                continue
            return None
        return problem

    def verify_report(self, signed_xml: bytes) -> Verdict:
        """The XAdES check of a report, against the platform CA."""
        return self._xades.verify(signed_xml)

    @staticmethod
    def report_identity(verdict: Verdict) -> str:
        """ "reports/{id}@{version}" from what the signature covers (never the raw input)."""
        root = verdict.signed_root
        if root is None:
            return ""
        found = {etree.QName(child).localname: (child.text or "") for child in root}
        name, version = found.get("Name", ""), found.get("Version", "")
        return f"{name}@{version}" if name and version.isdigit() else ""

    @staticmethod
    def fetch_evidence(link: Link, max_bytes: int = MAX_EVIDENCE_BYTES) -> bytes:
        """Download through the presigned link and check the bytes against the signed hash."""
        if not link.url.startswith(("https://", "http://")):
            raise ValueError("only http(s) presigned links are fetched")
        digest = hashlib.sha256()
        chunks = []
        total = 0
        # S310: the scheme is checked above; the URL comes from a verified envelope.
        with urllib.request.urlopen(link.url, timeout=30) as response:  # noqa: S310
            while chunk := response.read(1024 * 1024):
                total += len(chunk)
                if total > max_bytes:
                    raise ValueError(f"{link.name} is larger than {max_bytes} bytes")
                digest.update(chunk)
                chunks.append(chunk)
        if digest.hexdigest() != link.sha256:
            raise ValueError(f"{link.name}: the downloaded bytes do not match the signed hash")
        return b"".join(chunks)

    def seal(self, message_type: str, payload: bytes, in_reply_to: str = "") -> pb.Envelope:
        """A signed envelope to the platform, with an id of its own."""
        return self._signer.seal(
            envelope_id=envelopes.new_envelope_id(),
            message_type=message_type,
            recipient=self.config.platform_id,
            created_at=datetime.now(UTC),
            payload=payload,
            in_reply_to=in_reply_to,
        )

    async def publish(self, envelope: pb.Envelope) -> None:
        """Returns once NATS has stored it. The same envelope published again is dropped by
        JetStream's duplicate window and, past it, by the platform's processed log."""
        await self._js.publish(
            outbox_subject(self.config.partner_id, envelope.type),
            envelope.SerializeToString(),
            # The trace context of what it answers travels back beside the signed envelope.
            headers={"Nats-Msg-Id": envelope.id, **tracing.carrier()},
        )

    async def send(self, message_type: str, payload: bytes, in_reply_to: str = "") -> str:
        """Sign and publish a message to the platform; returns its envelope id once stored."""
        envelope = self.seal(message_type, payload, in_reply_to)
        await self.publish(envelope)
        return envelope.id

    def receipt(self, answered: Sequence[tuple[Received, Answer]]) -> pb.Envelope | None:
        """One signed receipt for a batch; None when nothing in it has an id to answer."""
        entries = [
            pb.ReceiptEntry(
                envelope_id=received.id,
                status=pb.ReceiptEntry.ACCEPTED if answer.accepted else pb.ReceiptEntry.REJECTED,
                reason=answer.reason,
                detail=answer.detail[:512],
            )
            # Receipts themselves are never receipted, and unreadable messages have no id.
            for received, answer in answered
            if received.id
        ]
        if not entries:
            return None
        return self.seal(RECEIPT, pb.Receipt(entries=entries).SerializeToString())


class ProcessedLog:
    """Envelope ids the partner has answered, how, and the replies it sealed for them
    (SQLite; ':memory:' by default)."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        self._db = sqlite3.connect(str(path))
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS processed "
            "(id TEXT PRIMARY KEY, accepted INTEGER, reason TEXT, detail TEXT)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS reply "
            "(id TEXT, position INTEGER, envelope BLOB, PRIMARY KEY (id, position))"
        )

    def answer(self, envelope_id: str) -> Answer | None:
        row = self._db.execute(
            "SELECT accepted, reason, detail FROM processed WHERE id = ?", (envelope_id,)
        ).fetchone()
        return Answer(bool(row[0]), row[1], row[2]) if row else None

    def replies(self, envelope_id: str) -> list[pb.Envelope]:
        rows = self._db.execute(
            "SELECT envelope FROM reply WHERE id = ? ORDER BY position", (envelope_id,)
        )
        return [pb.Envelope.FromString(row[0]) for row in rows]

    def record(self, envelope_id: str, answer: Answer, replies: Sequence[pb.Envelope] = ()) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO processed VALUES (?, ?, ?, ?)",
                (envelope_id, int(answer.accepted), answer.reason, answer.detail),
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO reply VALUES (?, ?, ?)",
                [(envelope_id, i, r.SerializeToString()) for i, r in enumerate(replies)],
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM processed").fetchone()[0])


Handle = Callable[[Received], Awaitable[Answer]]


async def _answer(
    item: Received, handle: Handle, log_: ProcessedLog, client: PartnerClient
) -> tuple[Answer, list[pb.Envelope]]:
    """The receipt entry and the sealed replies for one message."""
    if item.problem:
        return Answer.reject(item.problem, item.detail), []
    earlier = log_.answer(item.id)
    if earlier is not None:
        # A redelivery: answered as before, never handled twice; its replies go again as
        # they were sealed (same ids), in case they were not stored the first time.
        return earlier, log_.replies(item.id)
    answer = await handle(item)
    replies = [client.seal(kind, payload, item.id) for kind, payload in answer.replies]
    log_.record(item.id, answer, replies)
    return answer, replies


async def _publish(client: PartnerClient, envelope: pb.Envelope, after: list[SpanContext]) -> None:
    name = "partner receipt" if envelope.type == RECEIPT else f"partner reply {envelope.type}"
    with tracing.continued(name, after=after):
        await client.publish(envelope)


async def listen(
    client: PartnerClient,
    handle: Handle,
    log_: ProcessedLog,
    stop: asyncio.Event,
    *,
    batch: int = 100,
) -> None:
    """Pull, verify, handle each new message once, answer with one receipt per batch.

    A batch is acknowledged only once its replies and its receipt are stored in NATS, all
    published at once (each publish waits for the server's disk): a partner that stops,
    or loses NATS, before that gets the batch again and sends the same replies again."""
    while not stop.is_set():
        try:
            received = await client.pull(batch)
            if not received:
                continue
            answered: list[tuple[Received, Answer]] = []
            outgoing: list[tuple[pb.Envelope, list[SpanContext]]] = []
            # Each message is handled in the trace the platform's headers carry on.
            handled: list[SpanContext] = []
            for item in received:
                with tracing.continued(
                    f"partner handle {item.type or '?'}",
                    item.msg.headers,
                    kind=tracing.SpanKind.CONSUMER,
                ) as span:
                    answer, replies = await _answer(item, handle, log_, client)
                handled.append(span.get_span_context())
                answered.append((item, answer))
                outgoing += [(reply, [span.get_span_context()]) for reply in replies]
            receipt = client.receipt(answered)
            if receipt is not None:
                # In the first message's trace, linked to the others.
                outgoing.append((receipt, handled))
            try:
                await asyncio.gather(*(_publish(client, e, after) for e, after in outgoing))
            except bus.NATS_UNAVAILABLE:
                # Offered again now rather than after the ack wait (if NATS takes the nak).
                for item, _ in answered:
                    with contextlib.suppress(*bus.NATS_UNAVAILABLE):
                        await item.msg.nak()
                raise
            for item, _ in answered:
                await item.msg.ack()
        except asyncio.CancelledError:
            raise
        except bus.NATS_UNAVAILABLE as error:
            # Unacknowledged messages come again after the consumer's ack wait.
            log.warning("partner %s: %s; retrying", client.config.partner_id, error)
            await asyncio.sleep(0.25)
