"""Partner side of the exchange: pull the inbox, verify, answer with signed receipts.

Delivery to a partner is at least once (JetStream redelivers anything not acknowledged);
`listen` makes processing exactly once by remembering every envelope id it answered in a
`ProcessedLog` and replaying the stored answer for a duplicate instead of handling it again.
"""

from __future__ import annotations

import asyncio
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
    """What the partner says about a message: the receipt entry, and replies to send after."""

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

    async def send(self, message_type: str, payload: bytes, in_reply_to: str = "") -> str:
        """Sign and publish a message to the platform; returns its envelope id once stored."""
        envelope = self._signer.seal(
            envelope_id=envelopes.new_envelope_id(),
            message_type=message_type,
            recipient=self.config.platform_id,
            created_at=datetime.now(UTC),
            payload=payload,
            in_reply_to=in_reply_to,
        )
        await self._js.publish(
            outbox_subject(self.config.partner_id, message_type),
            envelope.SerializeToString(),
            # The trace context of what it answers travels back beside the signed envelope.
            headers={"Nats-Msg-Id": envelope.id, **tracing.carrier()},
        )
        return envelope.id

    async def settle(self, answered: Sequence[tuple[Received, Answer]]) -> None:
        """One signed receipt for the batch, then the acks (never before the receipt is stored)."""
        entries = []
        for received, answer in answered:
            status = pb.ReceiptEntry.ACCEPTED if answer.accepted else pb.ReceiptEntry.REJECTED
            entries.append(
                pb.ReceiptEntry(
                    envelope_id=received.id,
                    status=status,
                    reason=answer.reason,
                    detail=answer.detail[:512],
                )
            )
        # Receipts themselves are never receipted, and unreadable messages have no id.
        entries = [e for e in entries if e.envelope_id]
        if entries:
            await self.send(RECEIPT, pb.Receipt(entries=entries).SerializeToString())
        for received, _ in answered:
            await received.msg.ack()


class ProcessedLog:
    """Envelope ids the partner has answered, and how (SQLite; ':memory:' by default)."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        self._db = sqlite3.connect(str(path))
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS processed "
            "(id TEXT PRIMARY KEY, accepted INTEGER, reason TEXT, detail TEXT)"
        )

    def answer(self, envelope_id: str) -> Answer | None:
        row = self._db.execute(
            "SELECT accepted, reason, detail FROM processed WHERE id = ?", (envelope_id,)
        ).fetchone()
        return Answer(bool(row[0]), row[1], row[2]) if row else None

    def record(self, envelope_id: str, answer: Answer) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO processed VALUES (?, ?, ?, ?)",
                (envelope_id, int(answer.accepted), answer.reason, answer.detail),
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM processed").fetchone()[0])


Handle = Callable[[Received], Awaitable[Answer]]


async def _answer(item: Received, handle: Handle, log_: ProcessedLog) -> Answer:
    if item.problem:
        return Answer.reject(item.problem, item.detail)
    earlier = log_.answer(item.id)
    if earlier is not None:
        # A redelivery: answer as before, never handle twice (and send no replies again).
        return earlier
    answer = await handle(item)
    log_.record(item.id, answer)
    return answer


async def listen(
    client: PartnerClient,
    handle: Handle,
    log_: ProcessedLog,
    stop: asyncio.Event,
    *,
    batch: int = 100,
) -> None:
    """Pull, verify, handle each new message once, answer with one receipt per batch."""
    while not stop.is_set():
        try:
            received = await client.pull(batch)
            if not received:
                continue
            answered: list[tuple[Received, Answer]] = []
            replies: list[tuple[str, bytes, str, SpanContext]] = []
            # Each message is handled in the trace the platform's headers carry on.
            handled: list[SpanContext] = []
            for item in received:
                with tracing.continued(
                    f"partner handle {item.type or '?'}",
                    item.msg.headers,
                    kind=tracing.SpanKind.CONSUMER,
                ) as span:
                    answer = await _answer(item, handle, log_)
                handled.append(span.get_span_context())
                answered.append((item, answer))
                replies += [
                    (kind, payload, item.id, span.get_span_context())
                    for kind, payload in answer.replies
                ]
            # One receipt for the batch: in the first message's trace, linked to the others.
            with tracing.continued("partner receipt", after=handled):
                await client.settle(answered)
            for kind, payload, in_reply_to, context in replies:
                with tracing.continued(f"partner reply {kind}", after=[context]):
                    await client.send(kind, payload, in_reply_to)
        except asyncio.CancelledError:
            raise
        except bus.NATS_UNAVAILABLE as error:
            # Unacknowledged messages come again after the consumer's ack wait.
            log.warning("partner %s: %s; retrying", client.config.partner_id, error)
            await asyncio.sleep(0.25)
