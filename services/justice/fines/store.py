"""Fine tables and repositories (sqlmodel). Only the fine service reads these tables.

Amounts are stored as decimal strings (exact on SQLite and PostgreSQL alike). Personal
data (plate aside: it is the lookup key) lives in one JSON column, `persons`, so that
erasure after retention touches one column and leaves every statistic as it was.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Column, Index, LargeBinary, Text, delete, insert, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from justice.exchange.store import PlainInbox, PlainOutbox, SqlOutbox, processed_lookup
from justice.fines.letter import LetterKind
from justice.fines.model import (
    SETTLED,
    Address,
    Detection,
    DetectionSource,
    Fine,
    FineState,
    Lookup,
    LookupPhase,
    Money,
    Offence,
    Payment,
    PaymentOutcome,
    Person,
    PersonKind,
    Speed,
    Vehicle,
)
from justice.fines.ports import FineFigures, FineQuery, LetterDocuments
from justice.platform.db import (
    CONFLICTS,
    GroupCommit,
    PlainReads,
    Transaction,
    UtcDateTime,
    Writes,
    execute,
    page_after,
    select_sql,
    time_columns,
    utc_times,
    where_given,
)
from justice.platform.errors import Aborted

# Every state the scheduler may have to move on.
ESCALATING = (
    FineState.REGISTERED,
    FineState.OWNER_REQUESTED,
    FineState.OWNER_IDENTIFIED,
    FineState.DRIVER_DESIGNATED,
    FineState.NOTICE_SENT,
    FineState.PARTIALLY_PAID,
    FineState.REMINDER_SENT,
    FineState.PAYMENT_ORDER,
    FineState.FINAL,
    *SETTLED,
)


class FineRow(SQLModel, table=True):
    __tablename__ = "fine"
    __table_args__ = (
        Index("ix_fine_request", "request_id", unique=True),
        Index("ix_fine_reference", "payment_reference", unique=True),
        Index("ix_fine_state", "state", "fine_id"),
        Index("ix_fine_plate", "plate"),
    )

    fine_id: str = Field(primary_key=True, max_length=64)
    request_id: str | None = Field(default=None, max_length=128)
    state: str = Field(max_length=24)
    offence: str = Field(max_length=48)
    offence_time: datetime = Field(sa_type=UtcDateTime)
    offence_country: str = Field(max_length=2)
    registration_country: str = Field(max_length=2, index=True)
    plate: str = Field(max_length=64)
    # Source, device, place, category, provision, speed, evidence (no personal data).
    detection: str = Field(sa_column=Column(Text, nullable=False))
    currency: str = Field(max_length=3)
    amount: str = Field(max_length=16)
    surcharge: str = Field(max_length=16)
    paid: str = Field(max_length=16)
    payment_reference: str = Field(max_length=24)
    due_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    step_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    create_time: datetime = Field(sa_type=UtcDateTime)
    update_time: datetime = Field(sa_type=UtcDateTime)
    close_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    vehicle: str = Field(default="", sa_column=Column(Text, nullable=False))
    # Holder, owner, end user and driver as JSON; "" when none is known or after erasure.
    persons: str = Field(default="", sa_column=Column(Text, nullable=False))
    notice_language: str = Field(default="", max_length=8)
    notices_sent: int = 0
    lookups_sent: int = 0
    lookup_failed: bool = False
    executing_partner: str = Field(default="", max_length=64)
    contested_from: str = Field(default="", max_length=24)
    erased: bool = False
    revision: int = 1


class LookupRow(SQLModel, table=True):
    __tablename__ = "fine_lookup"
    __table_args__ = (Index("ix_fine_lookup_due", "phase", "deadline"),)

    lookup_id: str = Field(primary_key=True, max_length=80)
    fine_id: str = Field(max_length=64, index=True)
    attempts: int
    phase: str = Field(max_length=16)
    deadline: datetime = Field(sa_type=UtcDateTime)


class PaymentRow(SQLModel, table=True):
    __tablename__ = "fine_payment"

    payment_id: str = Field(primary_key=True, max_length=128)
    reference: str = Field(max_length=24, index=True)
    currency: str = Field(max_length=3)
    amount: str = Field(max_length=16)
    refund: str = Field(max_length=16)
    paid_time: datetime = Field(sa_type=UtcDateTime)
    # NULL when unmatched: kept for manual review.
    fine_id: str | None = Field(default=None, max_length=64, index=True)
    outcome: str = Field(max_length=32)


class LetterRow(SQLModel, table=True):
    """Every letter as sent: the signed PDF and the signed XML."""

    __tablename__ = "fine_letter"

    fine_id: str = Field(primary_key=True, max_length=64)
    seq: int = Field(primary_key=True)
    kind: str = Field(max_length=16)
    language: str = Field(max_length=8)
    pdf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    signed_xml: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    create_time: datetime = Field(sa_type=UtcDateTime)


# What an erased fine's plate reads; every name and address is gone.
ERASED = "ERASED"
_FINE = FineRow.__table__  # type: ignore[attr-defined]
_LOOKUP = LookupRow.__table__  # type: ignore[attr-defined]
_PAYMENT = PaymentRow.__table__  # type: ignore[attr-defined]
_LETTER = LetterRow.__table__  # type: ignore[attr-defined]


_FINE_BY_ID = select_sql(_FINE) + "WHERE fine_id = :id"
_LOOKUP_BY_ID = select_sql(_LOOKUP) + "WHERE lookup_id = :id"
_FINE_TIMES = time_columns(_FINE)
_LOOKUP_TIMES = time_columns(_LOOKUP)


class FineReads:
    """The reads of an owner reply (its processed key, the lookup, the fine) through the
    plain driver connections: through the ORM session each cost ~1.5 ms of the event loop
    the whole exchange shares. They see the latest commit; the writes that follow are
    guarded by the fine's revision, as with the session."""

    def __init__(self, plain: PlainReads) -> None:
        self._plain = plain
        self.seen = processed_lookup(plain, "fines")

    async def fine(self, fine_id: str) -> Fine | None:
        row = await self._plain.one(_FINE_BY_ID, {"id": fine_id})
        if row is None:
            return None
        return _to_domain(SimpleNamespace(**utc_times(row, _FINE_TIMES)))

    async def lookup(self, lookup_id: str) -> Lookup | None:
        row = await self._plain.one(_LOOKUP_BY_ID, {"id": lookup_id})
        if row is None:
            return None
        return _lookup(SimpleNamespace(**utc_times(row, _LOOKUP_TIMES)))


def _person_json(person: Person | None) -> dict[str, Any] | None:
    if person is None:
        return None
    a = person.address
    return {
        "kind": person.kind.value,
        "name": person.name,
        "address": [a.street, a.postal_code, a.city, a.country],
        "language": person.document_language,
    }


def _person(data: dict[str, Any] | None) -> Person | None:
    if data is None:
        return None
    return Person(
        PersonKind(data["kind"]), data["name"], Address(*data["address"]), data["language"]
    )


def _persons_json(fine: Fine) -> str:
    people = {
        "holder": _person_json(fine.holder),
        "owner": _person_json(fine.owner),
        "end_user": _person_json(fine.end_user),
        "driver": _person_json(fine.driver),
    }
    if not any(people.values()):
        return ""
    return json.dumps(people, ensure_ascii=False)


def _detection_json(d: Detection) -> str:
    return json.dumps(
        {
            "source": d.source.value if d.source else None,
            "device_id": d.device_id,
            "place": d.place,
            "vehicle_category": d.vehicle_category,
            "provision": d.provision,
            "speed": [d.speed.measured, d.speed.corrected, d.speed.allowed] if d.speed else None,
            "evidence": list(d.evidence),
        },
        ensure_ascii=False,
    )


def _vehicle_json(vehicle: Vehicle | None) -> str:
    if vehicle is None:
        return ""
    return json.dumps([vehicle.vin, vehicle.make, vehicle.model, vehicle.eu_category])


def _to_domain(row: Any) -> Fine:
    d = json.loads(row.detection)
    people = json.loads(row.persons) if row.persons else {}
    currency = row.currency
    return Fine(
        fine_id=row.fine_id,
        detection=Detection(
            source=DetectionSource(d["source"]) if d["source"] else None,
            device_id=d["device_id"],
            offence_time=row.offence_time,
            place=d["place"],
            offence_country=row.offence_country,
            plate=row.plate,
            registration_country=row.registration_country,
            vehicle_category=d["vehicle_category"],
            offence=Offence(row.offence),
            provision=d["provision"],
            speed=Speed(*d["speed"]) if d["speed"] else None,
            evidence=tuple(d["evidence"]),
        ),
        amount=Money(Decimal(row.amount), currency),
        payment_reference=row.payment_reference,
        create_time=row.create_time,
        update_time=row.update_time,
        state=FineState(row.state),
        request_id=row.request_id or "",
        paid=Money(Decimal(row.paid), currency),
        surcharge=Money(Decimal(row.surcharge), currency),
        due_time=row.due_time,
        step_time=row.step_time,
        vehicle=Vehicle(*json.loads(row.vehicle)) if row.vehicle else None,
        holder=_person(people.get("holder")),
        owner=_person(people.get("owner")),
        end_user=_person(people.get("end_user")),
        driver=_person(people.get("driver")),
        notice_language=row.notice_language,
        notices_sent=row.notices_sent,
        executing_partner=row.executing_partner,
        contested_from=FineState(row.contested_from) if row.contested_from else None,
        close_time=row.close_time,
        revision=row.revision,
    )


def _changing(fine: Fine) -> dict[str, Any]:
    """The columns a fine's life changes."""
    return {
        "state": fine.state.value,
        "amount": str(fine.amount.amount),
        "surcharge": str(fine.surcharge.amount),
        "paid": str(fine.paid.amount),
        "due_time": fine.due_time,
        "step_time": fine.step_time,
        "update_time": fine.update_time,
        "close_time": fine.close_time,
        "vehicle": _vehicle_json(fine.vehicle),
        "persons": _persons_json(fine),
        "notice_language": fine.notice_language,
        "notices_sent": fine.notices_sent,
        "executing_partner": fine.executing_partner,
        "contested_from": fine.contested_from.value if fine.contested_from else "",
    }


class SqlFineRepository:
    def __init__(self, session: AsyncSession, writes: Writes, reads: FineReads) -> None:
        self._session = session
        self._writes = writes
        self._reads = reads

    async def add(self, fine: Fine) -> None:
        d = fine.detection
        # Both checked on register.
        assert d.offence is not None
        assert d.offence_time is not None
        row = FineRow(
            fine_id=fine.fine_id,
            request_id=fine.request_id or None,
            offence=d.offence.value,
            offence_time=d.offence_time,
            offence_country=d.offence_country,
            registration_country=d.registration_country,
            plate=d.plate,
            detection=_detection_json(d),
            currency=fine.amount.currency,
            payment_reference=fine.payment_reference,
            create_time=fine.create_time,
            revision=fine.revision,
            **_changing(fine),
        )
        self._writes.insert(_FINE.name, row.model_dump())

    async def get(self, fine_id: str) -> Fine | None:
        return await self._reads.fine(fine_id)

    async def by_request(self, request_id: str) -> Fine | None:
        return await self._one(select(_FINE).where(_FINE.c.request_id == request_id))

    async def by_reference(self, reference: str) -> Fine | None:
        return await self._one(select(_FINE).where(_FINE.c.payment_reference == reference))

    async def _one(self, query: Any) -> Fine | None:
        row = (await execute(self._session, query)).first()
        return _to_domain(row) if row else None

    async def update(self, fine: Fine) -> None:
        """Guarded by the revision that was read: a fine changed meanwhile is refused."""
        self._writes.update(
            _FINE.name,
            {"revision": fine.revision + 1, **_changing(fine)},
            {"fine_id": fine.fine_id, "revision": fine.revision},
            rows=1,
            refusal=Aborted("CONCURRENT_CHANGE", f"{fine.name} changed meanwhile; read it again"),
        )
        fine.revision += 1

    async def count_lookup(self, fine_id: str, failed: bool) -> None:
        # Counters only: the fine's revision stays, they never conflict with a move.
        values: dict[str, Any] = (
            {"lookup_failed": True} if failed else {"lookups_sent": _FINE.c.lookups_sent + 1}
        )
        self._writes.add_statement(update(_FINE).where(_FINE.c.fine_id == fine_id).values(**values))

    async def list(self, query: FineQuery) -> Sequence[Fine]:
        statement = where_given(
            select(_FINE),
            (_FINE.c.state, query.state.value if query.state else None),
            (_FINE.c.registration_country, query.registration_country),
            (_FINE.c.plate, query.plate),
            (_FINE.c.offence, query.offence),
        )
        if query.offence_after is not None:
            statement = statement.where(_FINE.c.offence_time >= query.offence_after)
        if query.offence_before is not None:
            statement = statement.where(_FINE.c.offence_time < query.offence_before)
        statement = page_after(
            statement, _FINE.c.fine_id, after=query.page.after, size=query.page.size
        )
        return [_to_domain(row) for row in (await execute(self._session, statement)).all()]

    async def escalatable(self, after: str, limit: int) -> Sequence[Fine]:
        statement = (
            select(_FINE)
            .where(_FINE.c.state.in_([s.value for s in ESCALATING]), _FINE.c.fine_id > after)
            .order_by(_FINE.c.fine_id)
            .limit(limit)
        )
        return [_to_domain(row) for row in (await execute(self._session, statement)).all()]

    async def erasable(self, closed_before: datetime, limit: int) -> Sequence[str]:
        statement = (
            select(_FINE.c.fine_id)
            .where(
                _FINE.c.state == FineState.CLOSED.value,
                _FINE.c.close_time <= closed_before,
                _FINE.c.erased.is_(False),
            )
            .order_by(_FINE.c.fine_id)
            .limit(limit)
        )
        return [row.fine_id for row in (await execute(self._session, statement)).all()]

    async def erase(self, fine_id: str) -> None:
        """Personal data out, the figures statistics are made of untouched."""
        self._writes.add_statement(
            update(_FINE)
            .where(_FINE.c.fine_id == fine_id)
            .values(plate=ERASED, persons="", vehicle="", erased=True)
        )

    async def figures(self) -> Sequence[FineFigures]:
        c = _FINE.c
        columns: list[Any] = [
            c.state,
            c.registration_country,
            c.offence,
            c.currency,
            c.amount,
            c.surcharge,
            c.paid,
            c.notices_sent,
            c.lookups_sent,
            c.lookup_failed,
        ]
        statement = select(*columns)
        return [
            FineFigures(
                state=FineState(r.state),
                registration_country=r.registration_country,
                offence=r.offence,
                amount=Money(Decimal(r.amount) + Decimal(r.surcharge), r.currency),
                paid=Money(Decimal(r.paid), r.currency),
                notices_sent=r.notices_sent,
                lookups_sent=r.lookups_sent,
                lookup_failed=r.lookup_failed,
            )
            for r in (await execute(self._session, statement)).all()
        ]


class SqlLookupRepository:
    def __init__(self, session: AsyncSession, writes: Writes, reads: FineReads) -> None:
        self._session = session
        self._writes = writes
        self._reads = reads

    async def add(self, lookup: Lookup) -> None:
        self._writes.add_statement(
            insert(_LOOKUP).values(
                lookup_id=lookup.lookup_id,
                fine_id=lookup.fine_id,
                attempts=lookup.attempts,
                phase=lookup.phase.value,
                deadline=lookup.deadline,
            )
        )

    async def get(self, lookup_id: str) -> Lookup | None:
        return await self._reads.lookup(lookup_id)

    async def save(self, lookup: Lookup) -> None:
        self._writes.add_statement(
            update(_LOOKUP)
            .where(_LOOKUP.c.lookup_id == lookup.lookup_id)
            .values(phase=lookup.phase.value, deadline=lookup.deadline)
        )

    async def due(self, now: datetime, limit: int) -> Sequence[Lookup]:
        statement = (
            select(_LOOKUP)
            .where(
                _LOOKUP.c.phase.in_([LookupPhase.WAITING.value, LookupPhase.BACKOFF.value]),
                _LOOKUP.c.deadline <= now,
            )
            .order_by(_LOOKUP.c.deadline)
            .limit(limit)
        )
        return [_lookup(row) for row in (await execute(self._session, statement)).all()]


def _lookup(row: Any) -> Lookup:
    return Lookup(row.lookup_id, row.fine_id, row.attempts, LookupPhase(row.phase), row.deadline)


class SqlPaymentRepository:
    def __init__(self, session: AsyncSession, writes: Writes) -> None:
        self._session = session
        self._writes = writes

    async def get(self, payment_id: str) -> Payment | None:
        row = await self._session.get(PaymentRow, payment_id)
        if row is None:
            return None
        return Payment(
            payment_id=row.payment_id,
            reference=row.reference,
            money=Money(Decimal(row.amount), row.currency),
            paid_time=row.paid_time,
            fine_id=row.fine_id,
            outcome=PaymentOutcome(row.outcome),
            refund=Money(Decimal(row.refund), row.currency),
        )

    async def add(self, payment: Payment) -> None:
        self._writes.add_statement(
            insert(_PAYMENT).values(
                payment_id=payment.payment_id,
                reference=payment.reference,
                currency=payment.money.currency,
                amount=str(payment.money.amount),
                refund=str(payment.refund.amount),
                paid_time=payment.paid_time,
                fine_id=payment.fine_id,
                outcome=payment.outcome.value,
            )
        )


class SqlLetterRepository:
    def __init__(self, session: AsyncSession, writes: Writes) -> None:
        self._session = session
        self._writes = writes

    async def add(self, fine_id: str, seq: int, letter: LetterDocuments, now: datetime) -> None:
        self._writes.add_statement(
            insert(_LETTER).values(
                fine_id=fine_id,
                seq=seq,
                kind=letter.kind.value,
                language=letter.language,
                pdf=letter.pdf,
                signed_xml=letter.signed_xml,
                create_time=now,
            )
        )

    async def erase(self, fine_id: str) -> None:
        self._writes.add_statement(delete(_LETTER).where(_LETTER.c.fine_id == fine_id))

    async def of(self, fine_id: str) -> Sequence[LetterDocuments]:
        statement = select(_LETTER).where(_LETTER.c.fine_id == fine_id).order_by(_LETTER.c.seq)
        return [
            LetterDocuments(LetterKind(r.kind), r.language, r.pdf, r.signed_xml)
            for r in (await execute(self._session, statement)).all()
        ]


class _FineOutbox(PlainOutbox):
    """The outbox in a fines unit: written at commit, `about` read now."""

    def __init__(self, session: AsyncSession, writes: Writes) -> None:
        super().__init__(writes)
        self._reads = SqlOutbox(session)

    async def about(self, resources: Sequence[str]) -> list[str]:
        return await self._reads.about(resources)


class FineTransaction(Transaction):
    """One unit of work over the fine tables, the outbox and the fines' inbox. Reads go to
    the session as the use case runs (a fine, a lookup and a processed key by id to the
    plain driver connections, `FineReads`); writes are gathered and committed in one hop to a
    driver thread with other units (platform/db.GroupCommit). Through the ORM each write was
    an event-loop round trip with SQLite's write lock held: on the fines benchmark the
    RegisterOffence, owner-reply and letter transactions held it 8-11 ms each, and the
    lock was taken 94 % of the time."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], group: GroupCommit, reads: FineReads
    ) -> None:
        super().__init__(sessions)
        self._group = group
        self._reads = reads

    def bind(self, session: AsyncSession) -> None:
        self._writes = Writes()
        self.fines = SqlFineRepository(session, self._writes, self._reads)
        self.lookups = SqlLookupRepository(session, self._writes, self._reads)
        self.payments = SqlPaymentRepository(session, self._writes)
        self.letters = SqlLetterRepository(session, self._writes)
        self.outbox = _FineOutbox(session, self._writes)
        self.inbox = PlainInbox(self._reads.seen, self._writes, "fines")

    async def commit(self) -> None:
        try:
            await self._group.commit(self._writes)
        except CONFLICTS:
            # A unique key another transaction took first (a request id, a payment id, the
            # rare repeated payment reference): nothing of this unit was written.
            raise Aborted("CONFLICT", "written concurrently; try again") from None
        finally:
            self._writes.clear()
