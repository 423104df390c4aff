"""Custody tables and repositories (sqlmodel). Only the custody services read these tables.

An item's seal is unique among items not yet disposed: a partial unique index, so that two
concurrent seizures cannot both take a seal the other is taking. Events are append-only
rows keyed by (item, sequence); the chain hashes are checked by custody/chain.py, not here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    Column,
    CursorResult,
    Index,
    LargeBinary,
    Text,
    func,
    insert,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from justice.custody import chain
from justice.custody.ledger import ItemQuery, SignedAcceptance
from justice.custody.model import (
    Cash,
    Category,
    Decision,
    DecisionKind,
    Details,
    Drugs,
    Electronics,
    Firearm,
    Inventory,
    Item,
    ItemSpec,
    ItemState,
    Location,
    LocationKind,
    Money,
    Outcome,
    Person,
    Seizure,
    Vehicle,
)
from justice.exchange.store import SqlInbox, SqlOutbox
from justice.platform.db import (
    PlainReads,
    Transaction,
    UtcDateTime,
    execute,
    page_after,
    utc_time,
)
from justice.platform.errors import Aborted, AlreadyExists
from justice.platform.listing import Page
from justice.security.approval_store import SqlApprovals

_ACTIVE = text("state <> 'DISPOSED'")


class SeizureRow(SQLModel, table=True):
    __tablename__ = "custody_seizure"
    __table_args__ = (
        Index("ix_custody_seizure_request", "seizing_officer", "request_id", unique=True),
    )

    id: str = Field(primary_key=True, max_length=24)
    case_number: str = Field(max_length=64, index=True)
    report: str = Field(max_length=512)
    place: str = Field(max_length=512)
    seize_time: datetime = Field(sa_type=UtcDateTime)
    seizing_officer: str = Field(max_length=128)
    # Personal data, read only through GetSeizure (purpose-gated): JSON, NULL when unknown.
    seized_from: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    owner: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    legal_ground: str = Field(max_length=512)
    goods_waived: bool = False
    create_time: datetime = Field(sa_type=UtcDateTime)
    request_id: str | None = Field(default=None, max_length=128)
    items: str = Field(sa_column=Column(Text, nullable=False))


class ItemRow(SQLModel, table=True):
    __tablename__ = "custody_item"
    __table_args__ = (
        Index("ix_custody_item_case", "case_number", "id"),
        Index("ix_custody_item_location", "location", "id"),
        Index("ix_custody_item_custodian", "custodian", "id"),
        Index("ix_custody_item_state", "state", "id"),
        Index("ix_custody_item_due", "state", "due_time"),
        Index(
            "ux_custody_item_active_seal",
            "seal",
            unique=True,
            postgresql_where=_ACTIVE,
            sqlite_where=_ACTIVE,
        ),
    )

    id: str = Field(primary_key=True, max_length=24)
    seizure_id: str = Field(max_length=24)
    case_number: str = Field(max_length=64)
    category: str = Field(max_length=16)
    state: str = Field(max_length=24)
    seal: str = Field(max_length=64)
    location: str = Field(default="", max_length=160)
    custodian: str = Field(max_length=128)
    pending_receiver: str = Field(default="", max_length=128)
    resume_state: str = Field(max_length=24)
    parent_id: str = Field(default="", max_length=24)
    on_hold: bool = False
    holds: str = Field(sa_column=Column(Text, nullable=False))
    decision: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    outcome: str = Field(default="", max_length=16)
    due_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    checked_out_to: str = Field(default="", max_length=256)
    # The item's description in columns, so that a listed row needs no JSON parse unless it
    # has photos or category details (JSON, NULL for DOCUMENT and OTHER).
    description: str = Field(sa_column=Column(Text, nullable=False))
    value_amount: str | None = Field(default=None, max_length=40)  # a decimal's text
    value_currency: str | None = Field(default=None, max_length=3)
    photos: str = Field(sa_column=Column(Text, nullable=False))
    count: int = 1
    details: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    chain_length: int = 0
    chain_head: str = Field(default="", max_length=64)
    create_time: datetime = Field(sa_type=UtcDateTime)
    update_time: datetime = Field(sa_type=UtcDateTime)
    revision: int = 1


class EventRow(SQLModel, table=True):
    __tablename__ = "custody_event"

    item_id: str = Field(primary_key=True, max_length=24)
    sequence: int = Field(primary_key=True)
    type: str = Field(max_length=32)
    time: datetime = Field(sa_type=UtcDateTime)
    actor: str = Field(max_length=128)
    data: str = Field(sa_column=Column(Text, nullable=False))
    previous_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class InventoryRow(SQLModel, table=True):
    __tablename__ = "custody_inventory"

    id: str = Field(primary_key=True, max_length=24)
    location: str = Field(max_length=160)
    started_by: str = Field(max_length=128)
    start_time: datetime = Field(sa_type=UtcDateTime)
    state: str = Field(max_length=16)
    submitted_by: str = Field(default="", max_length=128)
    # JSON lists.
    expected: str = Field(sa_column=Column(Text, nullable=False))
    found: str = Field(sa_column=Column(Text, nullable=False))
    missing: str = Field(sa_column=Column(Text, nullable=False))
    unexpected: str = Field(sa_column=Column(Text, nullable=False))
    signed_report: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    report_sha256: str = Field(default="", max_length=64)


class LocationRow(SQLModel, table=True):
    __tablename__ = "custody_location"

    id: str = Field(primary_key=True, max_length=128)
    barcode: str = Field(max_length=128, unique=True)
    display_name: str = Field(max_length=256)
    kind: str = Field(max_length=16)
    unit: str = Field(max_length=128)
    secure: bool = False
    # How many items may rest there; 0 for no limit.
    capacity: int = 0
    create_time: datetime = Field(sa_type=UtcDateTime)
    created_by: str = Field(max_length=128)


class AcceptanceRow(SQLModel, table=True):
    """The receiver's signed acceptance of a hand-over; the ACCEPTED event carries its hash."""

    __tablename__ = "custody_acceptance"

    item_id: str = Field(primary_key=True, max_length=24)
    sequence: int = Field(primary_key=True)
    receiver: str = Field(max_length=128)
    signed_xml: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    sha256: str = Field(max_length=64)


_ITEMS: Any = ItemRow.__table__  # type: ignore[attr-defined]
_EVENTS: Any = EventRow.__table__  # type: ignore[attr-defined]
_LOCATIONS: Any = LocationRow.__table__  # type: ignore[attr-defined]
_RESTING = [s.value for s in (ItemState.IN_STORAGE, ItemState.AWAITING_DECISION, ItemState.DECIDED)]


def _money(value: Money | None) -> list[str] | None:
    return [str(value.amount), value.currency] if value else None


def _money_of(raw: list[str] | None) -> Money | None:
    return Money(Decimal(raw[0]), raw[1]) if raw else None


def _details_json(details: Details) -> dict[str, Any] | None:
    if details is None:
        return None
    if isinstance(details, Cash):
        return {
            "amount": _money(details.amount),
            "denominations": [[str(v), n] for v, n in details.denominations],
            "counted_by": list(details.counted_by),
        }
    if isinstance(details, Drugs):
        return {
            "substance": details.substance,
            "net_weight": str(details.net_weight),
            "unit": details.unit,
        }
    if isinstance(details, Electronics):
        return {
            "imei": details.imei,
            "serial": details.serial,
            "forensic_images": list(details.forensic_images),
        }
    return dict(vars(details))


def _details(category: Category, raw: dict[str, Any] | None) -> Details:
    if raw is None:
        return None
    if category is Category.CASH:
        amount = _money_of(raw["amount"])
        assert amount is not None
        return Cash(
            amount,
            tuple((Decimal(v), int(n)) for v, n in raw["denominations"]),
            (raw["counted_by"][0], raw["counted_by"][1]),
        )
    if category is Category.DRUGS:
        return Drugs(raw["substance"], Decimal(raw["net_weight"]), raw["unit"])
    if category is Category.ELECTRONICS:
        return Electronics(raw["imei"], raw["serial"], tuple(raw["forensic_images"]))
    if category is Category.VEHICLE:
        return Vehicle(**raw)
    if category is Category.FIREARM:
        return Firearm(**raw)
    return None


def _spec_values(spec: ItemSpec) -> dict[str, Any]:
    details = _details_json(spec.details)
    return {
        "description": spec.description,
        "value_amount": str(spec.value.amount) if spec.value else None,
        "value_currency": spec.value.currency if spec.value else None,
        "photos": json.dumps(list(spec.photos)),
        "count": spec.count,
        "details": json.dumps(details, ensure_ascii=False) if details is not None else None,
    }


def _values(item: Item) -> dict[str, Any]:
    decision = item.decision
    return {
        "state": item.state.value,
        "seal": item.seal,
        "location": item.location,
        "custodian": item.custodian,
        "pending_receiver": item.pending_receiver,
        "resume_state": item.resume_state.value,
        "on_hold": item.on_hold,
        "holds": json.dumps(list(item.holds)),
        "decision": json.dumps(
            [decision.kind.value, decision.reference, decision.date, decision.authority]
        )
        if decision
        else None,
        "outcome": item.outcome.value if item.outcome else "",
        "due_time": item.due_time,
        "checked_out_to": item.checked_out_to,
        "chain_length": item.chain_length,
        "chain_head": item.chain_head,
        "update_time": item.update_time,
    } | _spec_values(item.spec)


_CATEGORIES = {c.value: c for c in Category}
_STATES = {s.value: s for s in ItemState}
_OUTCOMES = {o.value: o for o in Outcome}
# The columns an item is read from, in the order _item unpacks them (and the benchmark
# loads them).
ITEM_COLUMNS = (
    "id",
    "seizure_id",
    "case_number",
    "category",
    "state",
    "seal",
    "location",
    "custodian",
    "pending_receiver",
    "resume_state",
    "parent_id",
    "on_hold",
    "holds",
    "decision",
    "outcome",
    "due_time",
    "checked_out_to",
    "description",
    "value_amount",
    "value_currency",
    "photos",
    "count",
    "details",
    "chain_length",
    "chain_head",
    "create_time",
    "update_time",
    "revision",
)
_SELECT_ITEMS = select(*(_ITEMS.c[name] for name in ITEM_COLUMNS))


def _decision(raw: str) -> Decision:
    kind, *rest = json.loads(raw)
    return Decision(DecisionKind(kind), *rest)


def _item(row: Sequence[Any]) -> Item:
    """An item from its row, columns as ITEM_COLUMNS lists them: from SQLAlchemy or from a
    plain driver (whose times may be SQLite text and whose booleans may be 0/1). Only photos,
    holds, a decision and category details are JSON, each parsed only when present."""
    (
        item_id,
        seizure_id,
        case_number,
        category_name,
        state,
        seal,
        location,
        custodian,
        pending_receiver,
        resume_state,
        parent_id,
        on_hold,
        holds,
        decision,
        outcome,
        due_time,
        checked_out_to,
        description,
        value_amount,
        value_currency,
        photos,
        count,
        details,
        chain_length,
        chain_head,
        create_time,
        update_time,
        revision,
    ) = row
    category = _CATEGORIES[category_name]
    spec = ItemSpec(
        category,
        description,
        Money(Decimal(value_amount), value_currency) if value_amount is not None else None,
        tuple(json.loads(photos)) if photos != "[]" else (),
        seal,
        count,
        _details(category, json.loads(details)) if details is not None else None,
    )
    return Item(
        item_id,
        seizure_id,
        case_number,
        spec,
        custodian,
        utc_time(create_time),  # type: ignore[arg-type]
        utc_time(update_time),  # type: ignore[arg-type]
        _STATES[state],
        location,
        bool(on_hold),
        tuple(json.loads(holds)) if holds != "[]" else (),
        pending_receiver,
        _STATES[resume_state],
        parent_id,
        _decision(decision) if decision else None,
        _OUTCOMES[outcome] if outcome else None,
        utc_time(due_time) if due_time is not None else None,
        checked_out_to,
        chain_length,
        chain_head,
        revision,
    )


def _seal_taken() -> AlreadyExists:
    return AlreadyExists("SEAL_IN_USE", "the seal is on an item not yet disposed")


class SqlItems:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, item: Item) -> None:
        values = _values(item) | {
            "id": item.id,
            "seizure_id": item.seizure_id,
            "case_number": item.case_number,
            "category": item.category.value,
            "parent_id": item.parent_id,
            "create_time": item.create_time,
            "revision": item.revision,
        }
        try:
            await execute(self._session, insert(_ITEMS).values(**values))
        except IntegrityError:
            # A concurrent seizure took the seal; the transaction is rolled back.
            raise _seal_taken() from None

    async def get(self, item_id: str) -> Item | None:
        statement = _SELECT_ITEMS.where(_ITEMS.c.id == item_id)
        row = (await execute(self._session, statement)).first()
        return _item(row) if row else None

    async def update(self, item: Item) -> None:
        statement = (
            update(_ITEMS)
            .where(_ITEMS.c.id == item.id, _ITEMS.c.revision == item.revision)
            .values(**_values(item), revision=item.revision + 1)
        )
        try:
            result = await execute(self._session, statement)
        except IntegrityError:
            raise _seal_taken() from None
        if cast(CursorResult[Any], result).rowcount != 1:
            raise Aborted("CONCURRENT_CHANGE", f"{item.name} changed meanwhile; read it again")
        item.revision += 1

    async def seal_in_use(self, seal: str) -> bool:
        query = select(_ITEMS.c.id).where(
            _ITEMS.c.seal == seal, _ITEMS.c.state != ItemState.DISPOSED.value
        )
        return (await execute(self._session, query.limit(1))).first() is not None

    async def at_location(self, location: str) -> Sequence[Item]:
        statement = _SELECT_ITEMS.where(_ITEMS.c.location == location, _ITEMS.c.state.in_(_RESTING))
        return [_item(row) for row in (await execute(self._session, statement)).all()]

    async def count_at(self, location: str) -> int:
        statement = select(func.count()).where(
            _ITEMS.c.location == location, _ITEMS.c.state.in_(_RESTING)
        )
        return int((await execute(self._session, statement)).scalar_one())

    async def overdue(self, now: datetime, limit: int) -> Sequence[Item]:
        statement = (
            _SELECT_ITEMS.where(
                _ITEMS.c.state == ItemState.CHECKED_OUT.value, _ITEMS.c.due_time < now
            )
            .order_by(_ITEMS.c.due_time)
            .limit(limit)
        )
        return [_item(row) for row in (await execute(self._session, statement)).all()]


class SqlItemListing:
    """ListItems' hot path: one keyset query (filter, `id > after`, ORDER BY id, LIMIT as a
    literal) through the plain driver (PlainReads), rows straight into domain items. Through
    the async session the same page cost ~3x the raw driver (greenlet hops, statement
    building, SQLAlchemy row processing). Rows come as tuples (no dict per row), and the
    description is in columns (no JSON parse unless photos or details): building a page of
    50 items went from ~0.8 ms to ~0.25 ms here; see tests/benchmarks/bench_custody.py."""

    _COLUMNS = ", ".join(ITEM_COLUMNS)

    def __init__(self, reads: PlainReads) -> None:
        self._reads = reads
        # One SQL text per (filters, first page or not, size): a handful in practice.
        self._sql: dict[tuple[tuple[str, ...], bool, int], str] = {}

    def _statement(self, filters: tuple[str, ...], after: bool, size: int) -> str:
        key = (filters, after, size)
        sql = self._sql.get(key)
        if sql is None:
            terms = [f"{name} = :{name}" for name in filters]
            if after:
                terms.append("id > :after")
            where = f" WHERE {' AND '.join(terms)}" if terms else ""
            # The page size as a literal: with LIMIT as a parameter, PostgreSQL's generic plan
            # for the prepared statement may walk the primary key instead of the filter's index.
            sql = f"SELECT {self._COLUMNS} FROM custody_item{where} ORDER BY id LIMIT {int(size)}"  # noqa: S608
            self._sql[key] = sql
        return sql

    async def list(self, query: ItemQuery) -> list[Item]:
        given = {
            "case_number": query.case_number,
            "state": query.state.value if query.state else None,
            "category": query.category.value if query.category else None,
            "location": query.location,
            "custodian": query.custodian,
            "seal": query.seal,
        }
        values = {name: value for name, value in given.items() if value is not None}
        sql = self._statement(tuple(values), bool(query.page.after), query.page.size)
        if query.page.after:
            values["after"] = query.page.after
        return [_item(row) for row in await self._reads.tuples(sql, values)]


class SqlEvents:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def append(self, link: chain.Link) -> None:
        event = link.event
        await execute(
            self._session,
            insert(_EVENTS).values(
                item_id=event.item.removeprefix("items/"),
                sequence=event.sequence,
                type=event.type,
                time=event.time,
                actor=event.actor,
                data=json.dumps(dict(event.data), ensure_ascii=False, sort_keys=True),
                previous_hash=link.previous_hash,
                hash=link.hash,
            ),
        )

    async def links(self, item: str) -> list[chain.Link]:
        statement = (
            select(_EVENTS)
            .where(_EVENTS.c.item_id == item.removeprefix("items/"))
            .order_by(_EVENTS.c.sequence)
        )
        return [
            chain.Link(
                chain.Event(
                    f"items/{row.item_id}",
                    row.sequence,
                    row.type,
                    row.time,
                    row.actor,
                    json.loads(row.data),
                ),
                row.previous_hash,
                row.hash,
            )
            for row in (await execute(self._session, statement)).all()
        ]


def _person_json(person: Person | None) -> str | None:
    return json.dumps(vars(person), ensure_ascii=False) if person else None


def _person(raw: str | None) -> Person | None:
    return Person(**json.loads(raw)) if raw else None


class SqlSeizures:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, seizure: Seizure) -> None:
        self._session.add(
            SeizureRow(
                id=seizure.id,
                case_number=seizure.case_number,
                report=seizure.report,
                place=seizure.place,
                seize_time=seizure.seize_time,
                seizing_officer=seizure.seizing_officer,
                seized_from=_person_json(seizure.seized_from),
                owner=_person_json(seizure.owner),
                legal_ground=seizure.legal_ground,
                goods_waived=seizure.goods_waived,
                create_time=seizure.create_time,
                request_id=seizure.request_id or None,
                items=json.dumps(list(seizure.items)),
            )
        )
        await self._session.flush()

    async def _one(self, query: Any) -> Seizure | None:
        row = (await self._session.exec(query)).first()
        if row is None:
            return None
        return Seizure(
            id=row.id,
            case_number=row.case_number,
            report=row.report,
            place=row.place,
            seize_time=row.seize_time,
            seizing_officer=row.seizing_officer,
            seized_from=_person(row.seized_from),
            owner=_person(row.owner),
            legal_ground=row.legal_ground,
            goods_waived=row.goods_waived,
            create_time=row.create_time,
            request_id=row.request_id or "",
            items=tuple(json.loads(row.items)),
        )

    async def get(self, seizure_id: str) -> Seizure | None:
        return await self._one(select(SeizureRow).where(SeizureRow.id == seizure_id))

    async def by_request(self, officer: str, request_id: str) -> Seizure | None:
        return await self._one(
            select(SeizureRow).where(
                SeizureRow.seizing_officer == officer, SeizureRow.request_id == request_id
            )
        )


class SqlInventories:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def _row(self, inventory: Inventory) -> InventoryRow:
        return InventoryRow(
            id=inventory.id,
            location=inventory.location,
            started_by=inventory.started_by,
            start_time=inventory.start_time,
            state=inventory.state,
            submitted_by=inventory.submitted_by,
            expected=json.dumps([list(pair) for pair in inventory.expected]),
            found=json.dumps(list(inventory.found)),
            missing=json.dumps(list(inventory.missing)),
            unexpected=json.dumps(list(inventory.unexpected)),
            signed_report=inventory.signed_report,
            report_sha256=inventory.report_sha256,
        )

    async def add(self, inventory: Inventory) -> None:
        self._session.add(self._row(inventory))
        await self._session.flush()

    async def update(self, inventory: Inventory) -> None:
        await self._session.merge(self._row(inventory))
        await self._session.flush()

    async def get(self, inventory_id: str) -> Inventory | None:
        row = await self._session.get(InventoryRow, inventory_id)
        if row is None:
            return None
        return Inventory(
            id=row.id,
            location=row.location,
            started_by=row.started_by,
            start_time=row.start_time,
            expected=tuple((a, b) for a, b in json.loads(row.expected)),
            state=row.state,
            submitted_by=row.submitted_by,
            found=tuple(json.loads(row.found)),
            missing=tuple(json.loads(row.missing)),
            unexpected=tuple(json.loads(row.unexpected)),
            signed_report=row.signed_report,
            report_sha256=row.report_sha256,
        )


def _location(row: Any) -> Location:
    return Location(
        id=row.id,
        barcode=row.barcode,
        display_name=row.display_name,
        kind=LocationKind(row.kind),
        unit=row.unit,
        secure=row.secure,
        capacity=row.capacity,
        create_time=row.create_time,
        created_by=row.created_by,
    )


class SqlLocations:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, location: Location) -> None:
        values = dict(vars(location)) | {"kind": location.kind.value}
        try:
            await execute(self._session, insert(_LOCATIONS).values(**values))
        except IntegrityError:
            # The transaction is rolled back; nothing else was in it.
            raise AlreadyExists(
                "LOCATION_EXISTS",
                f"a location with id {location.id} or barcode {location.barcode} exists",
                metadata={"location": location.name, "barcode": location.barcode},
            ) from None

    async def _one(self, condition: Any) -> Location | None:
        row = (await execute(self._session, select(_LOCATIONS).where(condition))).first()
        return _location(row) if row else None

    async def get(self, location_id: str) -> Location | None:
        return await self._one(_LOCATIONS.c.id == location_id)

    async def by_barcode(self, barcode: str) -> Location | None:
        return await self._one(_LOCATIONS.c.barcode == barcode)

    async def list(self, page: Page) -> Sequence[Location]:
        statement = page_after(
            select(_LOCATIONS), _LOCATIONS.c.id, after=page.after, size=page.size
        )
        return [_location(row) for row in (await execute(self._session, statement)).all()]


class SqlAcceptances:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, acceptance: SignedAcceptance) -> None:
        self._session.add(
            AcceptanceRow(
                item_id=acceptance.item.removeprefix("items/"),
                sequence=acceptance.sequence,
                receiver=acceptance.receiver,
                signed_xml=acceptance.signed_xml,
                sha256=acceptance.sha256,
            )
        )
        await self._session.flush()

    async def get(self, item: str, sequence: int) -> SignedAcceptance | None:
        row = await self._session.get(AcceptanceRow, (item.removeprefix("items/"), sequence))
        if row is None:
            return None
        return SignedAcceptance(item, row.sequence, row.receiver, row.signed_xml, row.sha256)


class CustodyTransaction(Transaction):
    """One transaction over the custody tables, the outbox, the inbox and approvals."""

    def bind(self, session: AsyncSession) -> None:
        self.items = SqlItems(session)
        self.events = SqlEvents(session)
        self.seizures = SqlSeizures(session)
        self.inventories = SqlInventories(session)
        self.locations = SqlLocations(session)
        self.acceptances = SqlAcceptances(session)
        self.outbox = SqlOutbox(session)
        self.inbox = SqlInbox(session, "custody")
        self.approvals = SqlApprovals(session)
