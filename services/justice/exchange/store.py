"""Exchange tables and repositories (sqlmodel). Only the exchange reads these tables.

The outbox and its delivery record are written in the domain's own transaction
(`SqlOutbox`); the processed-ids inbox (`SqlInbox`) likewise sits in the transaction of
whichever service applies an inbound message, so an effect and its "done" mark commit
together.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Column, CursorResult, Index, LargeBinary, String, Text, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from justice.exchange.message import Link, OutgoingMessage
from justice.exchange.model import (
    DeadLetter,
    Delivery,
    DeliveryState,
    Direction,
    KeptReceipt,
    Partner,
    PartnerKind,
)
from justice.platform.db import (
    DriverConnection,
    GroupCommit,
    PlainReads,
    Transaction,
    UtcDateTime,
    Writes,
    page_after,
    utc_time,
    where_given,
)
from justice.platform.errors import Aborted
from justice.platform.notify import notify
from justice.platform.tracing import traceparent


def time_ordered_uuid() -> str:
    """A version-7 UUID: ids sort by creation, so pages and indexes stay in time order."""
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class OutboxRow(SQLModel, table=True):
    __tablename__ = "exchange_outbox"
    __table_args__ = (
        Index("ix_exchange_outbox_pending", "published_at", "seq"),
        Index("ix_exchange_outbox_resource", "resource", "seq"),
    )

    # Publication order, assigned by the database.
    seq: int | None = Field(default=None, primary_key=True)
    # The message id: the relay sends it as Nats-Msg-Id, so a re-publish is deduplicated.
    id: str = Field(max_length=36, unique=True)
    recipient: str = Field(max_length=64)
    message_type: str = Field(max_length=64)
    subject: str = Field(max_length=255)
    subject_ref: str = Field(max_length=255)
    # subject_ref up to its @ (OutgoingMessage.resource): the newest message about a resource
    # is one index probe, not a LIKE over the whole outbox.
    resource: str = Field(
        default="", sa_column=Column(String(255), nullable=False, server_default="")
    )
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(sa_type=UtcDateTime)
    published_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # JSON list of presigned links; NULL when none.
    links: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    in_reply_to: str = Field(
        default="", sa_column=Column(String(36), nullable=False, server_default="")
    )
    # 1, then +1 per Redeliver: later attempts get their own Nats-Msg-Id.
    attempt: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    # The W3C traceparent of the call that wrote the row: the relay, later and maybe in
    # another process, publishes it in that trace. "" outside any trace.
    traceparent: str = Field(
        default="", sa_column=Column(String(55), nullable=False, server_default="")
    )
    # The relay that claimed the row for publishing, and until when (SqlRelayQueue.claim):
    # other relays leave it alone until then, and take it over once a dead relay's lease ends.
    claimed_by: str | None = Field(default=None, max_length=36)
    claimed_until: datetime | None = Field(default=None, sa_type=UtcDateTime)


class DeliveryRow(SQLModel, table=True):
    __tablename__ = "exchange_delivery"
    __table_args__ = (
        Index("ix_exchange_delivery_recipient", "recipient", "id"),
        Index("ix_exchange_delivery_state", "state", "deadline"),
    )

    id: str = Field(primary_key=True, max_length=36)
    recipient: str = Field(max_length=64)
    message_type: str = Field(max_length=64)
    subject_ref: str = Field(max_length=255)
    state: str = Field(max_length=16)
    attempts: int = 1
    reason: str = Field(default="", max_length=64)
    detail: str = Field(default="", max_length=1024)
    receipt: str = Field(default="", max_length=36)
    expects_receipt: bool = True
    create_time: datetime = Field(sa_type=UtcDateTime)
    publish_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    settle_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    deadline: datetime | None = Field(default=None, sa_type=UtcDateTime)


class PartnerRow(SQLModel, table=True):
    __tablename__ = "exchange_partner"

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=32)
    country: str = Field(max_length=2)
    certificate_pem: str = Field(sa_column=Column(Text, nullable=False))
    # JSON lists of message types.
    send_types: str = Field(sa_column=Column(Text, nullable=False))
    receive_types: str = Field(sa_column=Column(Text, nullable=False))
    create_time: datetime = Field(sa_type=UtcDateTime)
    update_time: datetime = Field(sa_type=UtcDateTime)


class DeadLetterRow(SQLModel, table=True):
    __tablename__ = "exchange_dead_letter"
    __table_args__ = (
        Index("ix_exchange_dead_letter_partner", "partner", "id"),
        Index("ix_exchange_dead_letter_resource", "resource"),
    )

    id: str = Field(primary_key=True, max_length=36)
    direction: str = Field(max_length=8)
    envelope_id: str = Field(max_length=64, index=True)
    partner: str = Field(max_length=64)
    message_type: str = Field(max_length=64)
    reason: str = Field(max_length=64)
    detail: str = Field(max_length=1024)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # The resource of the message it replies to (the outbox's `resource`), or "".
    resource: str = Field(
        default="", sa_column=Column(String(255), nullable=False, server_default="")
    )
    create_time: datetime = Field(sa_type=UtcDateTime)
    resolve_time: datetime | None = Field(default=None, sa_type=UtcDateTime)


class ProcessedRow(SQLModel, table=True):
    __tablename__ = "exchange_processed"

    # Which service applied the message ("exchange", "reports", ...): each claims its own.
    scope: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=160)
    processed_at: datetime = Field(sa_type=UtcDateTime)


_OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]
_DELIVERY = DeliveryRow.__table__  # type: ignore[attr-defined]
_DEAD_LETTER = DeadLetterRow.__table__  # type: ignore[attr-defined]


def _now() -> datetime:
    return datetime.now(UTC)


async def _execute(session: AsyncSession, statement: Any) -> Any:
    # Core statements on the session's own connection, inside its transaction.
    connection = await session.connection()
    return await connection.execute(statement)


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def _links_json(links: Sequence[Link]) -> str | None:
    if not links:
        return None
    return json.dumps([[x.name, x.url, x.sha256, x.size_bytes, x.media_type] for x in links])


def links_of(raw: str | None) -> tuple[Link, ...]:
    return tuple(Link(*item) for item in json.loads(raw)) if raw else ()


# Set on a session that added outbox messages: its commit wakes this process's relay.
OUTBOX_WRITTEN = "justice.exchange.outbox_written"
# On PostgreSQL the same commit wakes relays in other processes (platform/notify.py).
OUTBOX_CHANNEL = "justice_exchange_outbox"


def _outbox_rows(message: OutgoingMessage) -> tuple[dict[str, Any], dict[str, Any]]:
    """The outbox row of a message and its delivery record (born in the same transaction:
    no message goes untracked), as column values."""
    now = _now()
    message_id = time_ordered_uuid()
    outbox = {
        "id": message_id,
        "recipient": message.recipient,
        "message_type": message.message_type,
        "subject": message.subject,
        "subject_ref": message.subject_ref,
        "resource": message.resource,
        "payload": message.payload,
        "created_at": now,
        "links": _links_json(message.links),
        "in_reply_to": message.in_reply_to,
        "traceparent": traceparent(),
        "attempt": 1,
    }
    delivery = {
        "id": message_id,
        "recipient": message.recipient,
        "message_type": message.message_type,
        "subject_ref": message.subject_ref,
        "state": DeliveryState.PENDING.value,
        "attempts": 1,
        "reason": "",
        "detail": "",
        "receipt": "",
        "expects_receipt": message.expects_receipt,
        "create_time": now,
    }
    return outbox, delivery


class SqlOutbox:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, message: OutgoingMessage) -> None:
        self._session.info[OUTBOX_WRITTEN] = True
        await notify(self._session, OUTBOX_CHANNEL)
        outbox, delivery = _outbox_rows(message)
        self._session.add(OutboxRow(**outbox))
        self._session.add(DeliveryRow(**delivery))

    async def about(self, resources: Sequence[str]) -> list[str]:
        """The ids (envelope ids) of every message written about any of `resources` (any
        version of them): an index probe on (resource, seq)."""
        if not resources:
            return []
        rows = await _execute(
            self._session,
            select(_OUTBOX.c.id).where(_OUTBOX.c.resource.in_(list(resources))),
        )
        return [row.id for row in rows]

    async def resource_of(self, envelope_id: str) -> str:
        """The resource the message `envelope_id` (one of ours) was about, or ""."""
        if not envelope_id:
            return ""
        rows = await _execute(
            self._session, select(_OUTBOX.c.resource).where(_OUTBOX.c.id == envelope_id)
        )
        return next((row.resource for row in rows), "")


class PlainOutbox:
    """The outbox for a unit of `Writes` (platform/db.GroupCommit): the same two rows, the
    same wake-ups (this process's relay, and other processes' on PostgreSQL)."""

    def __init__(self, writes: Writes) -> None:
        self._writes = writes

    async def add(self, message: OutgoingMessage) -> None:
        outbox, delivery = _outbox_rows(message)
        self._writes.insert("exchange_outbox", outbox)
        self._writes.insert("exchange_delivery", delivery)
        self._writes.mark(OUTBOX_WRITTEN)
        self._writes.notify(OUTBOX_CHANNEL)

    async def forget(self, subject_ref: str) -> None:
        """Blanks the payloads and links of the sent messages about `subject_ref` (a domain
        erasing personal data after retention); their delivery records stay. Unsent
        messages keep theirs, so nothing owed to a partner is lost."""
        self._writes.add_statement(
            update(_OUTBOX)
            .where(_OUTBOX.c.subject_ref == subject_ref, _OUTBOX.c.published_at.is_not(None))
            .values(payload=b"", links=None)
        )
        # What partners sent about it and the platform refused (a register's reply that did
        # not fit) is kept in the dead letters, byte for byte: blanked too, by the index.
        self._writes.add_statement(
            update(_DEAD_LETTER)
            .where(_DEAD_LETTER.c.resource == subject_ref.split("@", 1)[0])
            .values(data=b"", detail="")
        )


class _AlreadyProcessed(Exception):
    """The unit's processed key was taken: another consumer applied the message."""


_CLAIM = (
    "INSERT INTO exchange_processed (scope, key, processed_at) "
    "VALUES (:scope, :key, :processed_at) ON CONFLICT DO NOTHING"
)


def _open_deliveries(ids: Sequence[str], sender: str) -> Any:
    """The sender's deliveries among `ids` that no receipt or deadline has settled yet."""
    open_states = (DeliveryState.PENDING.value, DeliveryState.PUBLISHED.value)
    return (
        _DELIVERY.c.id.in_(ids)
        & (_DELIVERY.c.recipient == sender)
        & _DELIVERY.c.state.in_(open_states)
    )


def _settling(
    ids: Sequence[str],
    sender: str,
    state: DeliveryState,
    receipt: str,
    now: datetime,
    reason: str = "",
    detail: str = "",
) -> Any:
    """The UPDATE that settles the sender's open deliveries among `ids` by `receipt`."""
    return (
        update(_DELIVERY)
        .where(_open_deliveries(ids, sender))
        .values(
            state=state.value,
            receipt=receipt,
            settle_time=now,
            reason=reason[:64],
            detail=detail[:1024],
        )
    )


def _claim(writes: Writes, scope: str, key: str, refusal: Exception) -> None:
    """`key` processed in `scope` as part of `writes`; the unit is refused with `refusal`
    when another transaction claimed it first."""
    claim = {"scope": scope, "key": key, "processed_at": _now()}
    writes.add(_CLAIM, claim, rows=1, refusal=refusal)


_SEEN = "SELECT 1 FROM exchange_processed WHERE scope = :scope AND key = :key"


def processed_lookup(reads: PlainReads, scope: str) -> Callable[[str], Awaitable[bool]]:
    """Whether a key of `scope` was processed, read through the plain driver connections."""

    async def seen(key: str) -> bool:
        return await reads.one(_SEEN, {"scope": scope, "key": key}) is not None

    return seen


class PlainInbox:
    """A scope's processed ids for a unit of `Writes`: looked up now (`seen`), claimed at
    commit."""

    def __init__(self, seen: Callable[[str], Awaitable[bool]], writes: Writes, scope: str) -> None:
        self._seen = seen
        self._writes = writes
        self._scope = scope

    async def claim(self, key: str) -> bool:
        if await self._seen(key):
            return False
        # A concurrent consumer that claims it first refuses this unit at commit.
        refusal = Aborted("ALREADY_PROCESSED", f"{key} is being processed elsewhere")
        _claim(self._writes, self._scope, key, refusal)
        return True


class InboundWrites:
    """The inbound consumer's closing transaction for a message, group-committed
    (platform/db.GroupCommit): the exchange's processed claim with what it records, in one
    hop, SQLite's write lock held for that hop only. Through the ORM the claim took the lock
    at its INSERT and kept it across four more event-loop round trips: on the fines
    benchmark these transactions held it for 70 % of the time it was held (94 %)."""

    def __init__(self, group: GroupCommit) -> None:
        self._group = group

    async def answered(self, key: str, receipt: OutgoingMessage) -> bool:
        """Claims `key` with the receipt that answers it; False when it was claimed before."""
        writes = self._claimed(key)
        await PlainOutbox(writes).add(receipt)
        return await self._commit(writes)

    async def delivered(
        self,
        key: str,
        partner: str,
        receipt_id: str,
        envelope: bytes,
        certificate_pem: str,
        delivery_ids: Sequence[str],
        now: datetime,
    ) -> bool:
        """Claims `key`, keeps the receipt and settles the partner's open deliveries among
        `delivery_ids` as DELIVERED; False when it was claimed before."""
        writes = self._claimed(key)
        receipt = {
            "partner": partner,
            "id": receipt_id,
            "envelope": envelope,
            "certificate_pem": certificate_pem,
            "receive_time": now,
        }
        writes.insert("exchange_receipt", receipt)
        if delivery_ids:
            writes.add_statement(
                _settling(delivery_ids, partner, DeliveryState.DELIVERED, receipt_id, now)
            )
        return await self._commit(writes)

    @staticmethod
    def _claimed(key: str) -> Writes:
        writes = Writes()
        _claim(writes, "exchange", key, _AlreadyProcessed())
        return writes

    async def _commit(self, writes: Writes) -> bool:
        try:
            await self._group.commit(writes)
        except _AlreadyProcessed:
            return False
        return True


async def newest_subject_ref(session: AsyncSession, resource: str) -> str | None:
    """The subject_ref of the last message written about `resource` (outbox order), e.g. the
    newest chain head a domain anchored in its messages. An index probe on (resource, seq)."""
    statement = (
        select(OutboxRow.subject_ref)
        .where(col(OutboxRow.resource) == resource)
        .order_by(col(OutboxRow.seq).desc())
        .limit(1)
    )
    return (await session.exec(statement)).first()


class SqlInbox:
    """Processed ids of one scope: `claim` is true the first time a key is seen."""

    def __init__(self, session: AsyncSession, scope: str) -> None:
        self._session = session
        self._scope = scope

    async def seen(self, key: str) -> bool:
        return await self._session.get(ProcessedRow, (self._scope, key)) is not None

    async def seen_among(self, keys: Collection[str]) -> set[str]:
        """Which of `keys` were processed: one query for a whole batch."""
        if not keys:
            return set()
        statement = select(col(ProcessedRow.key)).where(
            col(ProcessedRow.scope) == self._scope, col(ProcessedRow.key).in_(list(keys))
        )
        return set((await self._session.exec(statement)).all())

    async def claim(self, key: str) -> bool:
        found = await self._session.get(ProcessedRow, (self._scope, key))
        if found is not None:
            return False
        self._session.add(ProcessedRow(scope=self._scope, key=key, processed_at=_now()))
        try:
            await self._session.flush()
        except IntegrityError:
            # A concurrent consumer won the race; its transaction holds the effect.
            raise Aborted("ALREADY_PROCESSED", f"{key} is being processed elsewhere") from None
        return True


@dataclass(frozen=True)
class PendingMessage:
    id: str
    recipient: str
    message_type: str
    subject: str
    payload: bytes
    created_at: datetime
    links: tuple[Link, ...]
    in_reply_to: str
    attempt: int
    traceparent: str = ""

    @property
    def nats_msg_id(self) -> str:
        # The first attempt uses the bare id, as DESIGN.md says; a redelivery must not be
        # swallowed by JetStream's duplicate window, so it gets a suffix.
        return self.id if self.attempt == 1 else f"{self.id}.{self.attempt}"


# Rows no other relay holds a live lease on (this relay's own are leased again), oldest
# first. On PostgreSQL `FOR UPDATE SKIP LOCKED` lets relays claiming at the same moment pass
# each other's rows instead of queueing behind them; on SQLite the write lock serialises
# claims.
_CLAIM_ROWS = (
    "UPDATE exchange_outbox SET claimed_by = :relay, claimed_until = :until WHERE seq IN ("
    "SELECT seq FROM exchange_outbox WHERE published_at IS NULL AND (claimed_until IS NULL "
    "OR claimed_until < :now OR claimed_by = :relay) ORDER BY seq LIMIT :limit{lock}) "
    "RETURNING seq, id, recipient, message_type, subject, payload, created_at, links, "
    "in_reply_to, attempt, traceparent"
)


class RelayWrites:
    """The relay's claims and publication marks, each one hop on the group writer's thread
    (platform/db.GroupCommit). Through the ORM a claim held SQLite's write lock across four
    event-loop round trips (7 ms on the fines benchmark, a quarter of the time the lock was
    held) and a mark across four more."""

    def __init__(self, writer: GroupCommit) -> None:
        self._writer = writer

    async def claim(
        self, relay: str, limit: int, now: datetime, until: datetime
    ) -> list[PendingMessage]:
        """Up to `limit` unpublished rows, oldest first, leased to `relay` until `until`.

        The lease keeps the rows the relay's after this short transaction commits, while it
        publishes. On PostgreSQL the commit does not wait for the WAL flush: a claim lost in
        a crash only lets another relay publish the rows again, which JetStream's duplicate
        window absorbs, while every pass waited 15-130 ms for that flush before it could
        publish."""
        parameters = {"relay": relay, "until": until, "now": now, "limit": limit}

        def claim(connection: DriverConnection) -> list[tuple[Any, ...]]:
            postgres = connection.backend != "sqlite"
            if postgres:
                connection.execute("SET LOCAL synchronous_commit = off")
            sql = _CLAIM_ROWS.format(lock=" FOR UPDATE SKIP LOCKED" if postgres else "")
            return connection.rows(sql, parameters)

        rows = sorted(await self._writer.run(claim))
        return [
            PendingMessage(
                id=r[1],
                recipient=r[2],
                message_type=r[3],
                subject=r[4],
                payload=bytes(r[5]),
                created_at=cast(datetime, utc_time(r[6])),
                links=links_of(r[7]),
                in_reply_to=r[8],
                attempt=r[9],
                traceparent=r[10],
            )
            for r in rows
        ]

    async def mark_published(self, ids: Sequence[str], now: datetime, deadline: datetime) -> None:
        """JetStream acknowledged `ids`. A mark lost in a crash only publishes the rows
        again, which JetStream's duplicate window and the receivers' idempotency absorb."""
        names = {f"id{i}": message_id for i, message_id in enumerate(ids)}
        among = ", ".join(f":{name}" for name in names)
        writes = Writes()
        writes.add(
            f"UPDATE exchange_outbox SET published_at = :now WHERE id IN ({among})",  # noqa: S608
            {**names, "now": now},
        )
        # Only PENDING moves: a receipt may already have settled a re-published message.
        pending = f"id IN ({among}) AND state = 'PENDING'"
        writes.add(
            "UPDATE exchange_delivery SET state = 'PUBLISHED', publish_time = :now, "  # noqa: S608
            f"deadline = :deadline WHERE {pending} AND expects_receipt",
            {**names, "now": now, "deadline": deadline},
        )
        # Receipts expect no answer: publication settles them.
        writes.add(
            "UPDATE exchange_delivery SET state = 'DELIVERED', publish_time = :now, "  # noqa: S608
            f"settle_time = :now WHERE {pending} AND NOT expects_receipt",
            {**names, "now": now},
        )
        await self._writer.commit(writes)


class SqlRelayQueue:
    """What the relay reads and marks; Core statements, as this is the hot path."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def release(self, relay: str, ids: Sequence[str] | None = None) -> None:
        """Give up `relay`'s leases (on `ids` only, when given): another relay may take those
        rows at once rather than when the lease ends."""
        mine = (_OUTBOX.c.claimed_by == relay) & _OUTBOX.c.published_at.is_(None)
        if ids is not None:
            mine = mine & _OUTBOX.c.id.in_(ids)
        await _execute(
            self._session,
            update(_OUTBOX).where(mine).values(claimed_by=None, claimed_until=None),
        )

    async def refuse(self, message_id: str, reason: str, detail: str, now: datetime) -> None:
        """Never publishable (e.g. unknown partner): settle it REJECTED without publishing."""
        await _execute(
            self._session,
            update(_OUTBOX).where(_OUTBOX.c.id == message_id).values(published_at=now),
        )
        await _execute(
            self._session,
            update(_DELIVERY)
            .where(_DELIVERY.c.id == message_id)
            .values(
                state=DeliveryState.REJECTED.value, reason=reason, detail=detail, settle_time=now
            ),
        )

    async def backlog(self) -> tuple[int, datetime | None]:
        query = select(func.count(), func.min(_OUTBOX.c.created_at)).where(
            _OUTBOX.c.published_at.is_(None)
        )
        count, oldest = (await _execute(self._session, query)).one()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return int(count), oldest

    async def requeue(self, message_id: str, attempt: int) -> None:
        await notify(self._session, OUTBOX_CHANNEL)
        await _execute(
            self._session,
            update(_OUTBOX)
            .where(_OUTBOX.c.id == message_id)
            .values(published_at=None, attempt=attempt, claimed_by=None, claimed_until=None),
        )


@dataclass(frozen=True)
class DeliveryQuery:
    size: int
    after: str = ""
    recipient: str | None = None
    state: DeliveryState | None = None
    message_type: str | None = None


def _delivery(row: Any) -> Delivery:
    """A delivery from its row: an ORM entity or a Core row."""
    return Delivery(
        id=row.id,
        recipient=row.recipient,
        message_type=row.message_type,
        subject_ref=row.subject_ref,
        state=DeliveryState(row.state),
        create_time=row.create_time,
        attempts=row.attempts,
        reason=row.reason,
        detail=row.detail,
        publish_time=row.publish_time,
        settle_time=row.settle_time,
        deadline=row.deadline,
        receipt=row.receipt,
    )


class SqlDeliveries:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, delivery_id: str) -> Delivery | None:
        row = await self._session.get(DeliveryRow, delivery_id)
        return _delivery(row) if row else None

    async def get_many(self, ids: Sequence[str]) -> Sequence[Delivery]:
        """The known deliveries among `ids`, in one query (a receipt names a whole batch).
        Core rows, not ORM entities: loading entities was most of a receipt's cost on the
        exchange benchmark."""
        if not ids:
            return []
        statement = select(_DELIVERY).where(_DELIVERY.c.id.in_(ids))
        return [_delivery(r) for r in (await _execute(self._session, statement)).all()]

    async def list(self, query: DeliveryQuery) -> Sequence[Delivery]:
        statement = where_given(
            select(DeliveryRow),
            (col(DeliveryRow.recipient), query.recipient),
            (col(DeliveryRow.state), query.state.value if query.state else None),
            (col(DeliveryRow.message_type), query.message_type),
        )
        statement = page_after(statement, col(DeliveryRow.id), after=query.after, size=query.size)
        return [_delivery(r) for r in (await self._session.exec(statement)).all()]

    async def settle(
        self,
        ids: Sequence[str],
        sender: str,
        state: DeliveryState,
        receipt: str,
        now: datetime,
        reason: str = "",
        detail: str = "",
    ) -> Sequence[Delivery]:
        """Settle the sender's open deliveries among `ids`; returns those that moved."""
        statement = select(_DELIVERY).where(_open_deliveries(ids, sender))
        rows = list((await _execute(self._session, statement)).all())
        if rows:
            await _execute(
                self._session,
                _settling([r.id for r in rows], sender, state, receipt, now, reason, detail),
            )
        return [_delivery(r) for r in rows]

    async def overdue(self, now: datetime, limit: int) -> Sequence[Delivery]:
        statement = (
            select(DeliveryRow)
            .where(
                col(DeliveryRow.state) == DeliveryState.PUBLISHED.value,
                col(DeliveryRow.deadline) < now,
            )
            .limit(limit)
        )
        return [_delivery(r) for r in (await self._session.exec(statement)).all()]

    async def expire(self, delivery: Delivery, now: datetime) -> bool:
        result = await _execute(
            self._session,
            update(_DELIVERY)
            .where(
                _DELIVERY.c.id == delivery.id,
                _DELIVERY.c.state == DeliveryState.PUBLISHED.value,
            )
            .values(
                state=DeliveryState.EXPIRED.value,
                reason="NO_RECEIPT",
                detail="no receipt before the deadline",
                settle_time=now,
            ),
        )
        return _rowcount(result) == 1

    async def reset(self, delivery: Delivery, previous: DeliveryState) -> None:
        result = await _execute(
            self._session,
            update(_DELIVERY)
            .where(_DELIVERY.c.id == delivery.id, _DELIVERY.c.state == previous.value)
            .values(
                state=delivery.state.value,
                attempts=delivery.attempts,
                reason="",
                detail="",
                receipt="",
                publish_time=None,
                settle_time=None,
                deadline=None,
            ),
        )
        if _rowcount(result) != 1:
            raise Aborted("CONCURRENT_CHANGE", f"{delivery.name} changed meanwhile; read it again")

    async def count(self, state: DeliveryState) -> int:
        query = select(func.count()).select_from(_DELIVERY).where(_DELIVERY.c.state == state.value)
        return int((await _execute(self._session, query)).scalar_one())

    async def count_by_state(self) -> dict[DeliveryState, int]:
        """Every state, those without deliveries at 0."""
        query = select(_DELIVERY.c.state, func.count()).group_by(_DELIVERY.c.state)
        counts = dict.fromkeys(DeliveryState, 0)
        for state, count in (await _execute(self._session, query)).all():
            counts[DeliveryState(state)] = int(count)
        return counts


def _partner(row: PartnerRow) -> Partner:
    return Partner(
        id=row.id,
        kind=PartnerKind(row.kind),
        country=row.country,
        certificate_pem=row.certificate_pem,
        send_types=frozenset(json.loads(row.send_types)),
        receive_types=frozenset(json.loads(row.receive_types)),
        create_time=row.create_time,
        update_time=row.update_time,
    )


def _partner_row(partner: Partner) -> PartnerRow:
    return PartnerRow(
        id=partner.id,
        kind=partner.kind.value,
        country=partner.country,
        certificate_pem=partner.certificate_pem,
        send_types=json.dumps(sorted(partner.send_types)),
        receive_types=json.dumps(sorted(partner.receive_types)),
        create_time=partner.create_time,
        update_time=partner.update_time,
    )


class SqlPartners:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, partner: Partner) -> None:
        self._session.add(_partner_row(partner))

    async def get(self, partner_id: str) -> Partner | None:
        row = await self._session.get(PartnerRow, partner_id)
        return _partner(row) if row else None

    async def list(self, size: int, after: str) -> Sequence[Partner]:
        statement = page_after(select(PartnerRow), col(PartnerRow.id), after=after, size=size)
        return [_partner(r) for r in (await self._session.exec(statement)).all()]

    async def update(self, partner: Partner) -> None:
        await self._session.merge(_partner_row(partner))

    async def delete(self, partner_id: str) -> None:
        await self._session.exec(delete(PartnerRow).where(col(PartnerRow.id) == partner_id))


def _dead_letter(row: DeadLetterRow) -> DeadLetter:
    return DeadLetter(
        id=row.id,
        direction=Direction(row.direction),
        envelope_id=row.envelope_id,
        partner=row.partner,
        message_type=row.message_type,
        reason=row.reason,
        detail=row.detail,
        create_time=row.create_time,
        resolve_time=row.resolve_time,
        data=row.data,
        resource=row.resource,
    )


@dataclass(frozen=True)
class DeadLetterQuery:
    size: int
    after: str = ""
    partner: str | None = None
    direction: Direction | None = None
    reason: str | None = None


class SqlDeadLetters:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, letter: DeadLetter) -> None:
        self._session.add(
            DeadLetterRow(
                id=letter.id,
                direction=letter.direction.value,
                envelope_id=letter.envelope_id[:64],
                partner=letter.partner[:64],
                message_type=letter.message_type[:64],
                reason=letter.reason[:64],
                detail=letter.detail[:1024],
                data=letter.data,
                resource=letter.resource,
                create_time=letter.create_time,
            )
        )

    async def list(self, query: DeadLetterQuery) -> Sequence[DeadLetter]:
        statement = where_given(
            select(DeadLetterRow),
            (col(DeadLetterRow.partner), query.partner),
            (col(DeadLetterRow.direction), query.direction.value if query.direction else None),
            (col(DeadLetterRow.reason), query.reason),
        )
        statement = page_after(statement, col(DeadLetterRow.id), after=query.after, size=query.size)
        return [_dead_letter(r) for r in (await self._session.exec(statement)).all()]

    async def resolve(self, envelope_id: str, now: datetime) -> None:
        await self._session.exec(
            update(DeadLetterRow)
            .where(
                col(DeadLetterRow.envelope_id) == envelope_id,
                col(DeadLetterRow.resolve_time).is_(None),
            )
            .values(resolve_time=now)
        )

    async def count(self) -> int:
        query = select(func.count()).select_from(DeadLetterRow)
        return int((await _execute(self._session, query)).scalar_one())


class ExchangeTransaction(Transaction):
    """One transaction over the exchange's tables."""

    def bind(self, session: AsyncSession) -> None:
        self.partners = SqlPartners(session)
        self.deliveries = SqlDeliveries(session)
        self.dead_letters = SqlDeadLetters(session)
        self.relay = SqlRelayQueue(session)
        self.outbox = SqlOutbox(session)
        self.processed = SqlInbox(session, "exchange")
        self.receipts = SqlReceipts(session)


class ReceiptRow(SQLModel, table=True):
    """Receipts as received, one row per receipt envelope; deliveries name theirs."""

    __tablename__ = "exchange_receipt"

    partner: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=36)
    envelope: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    certificate_pem: str = Field(sa_column=Column(Text, nullable=False))
    receive_time: datetime = Field(sa_type=UtcDateTime)


class SqlReceipts:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def keep(
        self, partner: str, receipt_id: str, envelope: bytes, certificate_pem: str, now: datetime
    ) -> None:
        self._session.add(
            ReceiptRow(
                partner=partner,
                id=receipt_id,
                envelope=envelope,
                certificate_pem=certificate_pem,
                receive_time=now,
            )
        )

    async def of(self, delivery: Delivery) -> KeptReceipt | None:
        if not delivery.receipt:
            return None
        row = await self._session.get(ReceiptRow, (delivery.recipient, delivery.receipt))
        return _kept(delivery.id, row) if row else None

    async def about(self, subject_ref: str, limit: int) -> Sequence[KeptReceipt]:
        """Receipts of the deliveries about `subject_ref` or any version of it (`ref@n`)."""
        statement = (
            select(DeliveryRow, ReceiptRow)
            .join(
                ReceiptRow,
                (col(ReceiptRow.partner) == col(DeliveryRow.recipient))
                & (col(ReceiptRow.id) == col(DeliveryRow.receipt)),
            )
            .where(
                (col(DeliveryRow.subject_ref) == subject_ref)
                | col(DeliveryRow.subject_ref).startswith(f"{subject_ref}@", autoescape=True)
            )
            .order_by(col(DeliveryRow.id))
            .limit(limit)
        )
        rows = (await self._session.exec(statement)).all()
        return [_kept(delivery.id, receipt) for delivery, receipt in rows]


def _kept(delivery_id: str, row: ReceiptRow) -> KeptReceipt:
    return KeptReceipt(
        delivery=delivery_id,
        receipt_id=row.id,
        partner=row.partner,
        envelope=row.envelope,
        certificate_pem=row.certificate_pem,
        receive_time=row.receive_time,
    )
