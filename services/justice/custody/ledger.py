"""The custody ledger: the ports every custody use case shares, and the one way an item
changes. Every change appends one event to the item's hash chain and, in the same
transaction, writes an outbox message (custody_event) whose subject carries the new chain
head, so the head lives outside the custody tables too: deleting the newest events is caught
by comparing with the newest anchored head. The head also goes into the audit record of the
call (`annotate`).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from justice.custody import chain
from justice.custody.model import (
    Category,
    Inventory,
    Item,
    ItemState,
    Location,
    Seizure,
    Tolerance,
    check_location,
)
from justice.exchange.message import Inbox, OutboxWriter, OutgoingMessage
from justice.platform import ports
from justice.platform.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from justice.platform.listing import Page
from justice.security.approvals import ApprovalRepository, FourEyes
from justice.signing.xades import Verdict

MESSAGE_TYPE_EVENT = "custody_event"
MESSAGE_TYPE_NOTICE = "seizure_notice"
MESSAGE_TYPE_DECISION_REQUESTED = "custody_decision_requested"
# What the prosecutor sends (justice.custody.v1.CustodyDecisionMessage).
MESSAGE_TYPE_DECISION = "custody_decision"
DISPOSE_ACTION = "custody.dispose"
_ITEM = re.compile(r"^items/([a-f0-9]{24})$")
SEIZURE = re.compile(r"^seizures/([a-f0-9]{24})$")
INVENTORY = re.compile(r"^inventories/([a-f0-9]{24})$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/:#-]{0,127}$")


def new_id() -> str:
    # Time-ordered, so that ids sort by creation and page tokens are stable.
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def id_of(pattern: re.Pattern[str], name: str, field: str, expected: str) -> str:
    match = pattern.match(name)
    if match is None:
        raise InvalidArgument.of([FieldViolation(field, f"expected {expected}")])
    return match.group(1)


def item_id(name: str, field: str = "name") -> str:
    return id_of(_ITEM, name, field, "items/{item}")


def check_reference(field: str, value: str) -> str:
    if not REFERENCE.match(value):
        raise InvalidArgument.of([FieldViolation(field, "1-128 of letters, digits, . _ / : # -")])
    return value


@dataclass(frozen=True)
class ItemQuery:
    page: Page
    case_number: str | None = None
    state: ItemState | None = None
    category: Category | None = None
    location: str | None = None
    custodian: str | None = None
    seal: str | None = None


@dataclass(frozen=True)
class Scope:
    """Who acts, and whether a condition restricts them to items in their own custody
    (IN_CUSTODY: held by them, or on its way to them)."""

    actor: str
    in_custody_only: bool = False

    def sees(self, item: Item) -> bool:
        return not self.in_custody_only or self.actor in (item.custodian, item.pending_receiver)


@dataclass(frozen=True)
class CustodyAlert:
    """Raised through the audit alert channel. `key` makes it raise once."""

    rule: str  # SEAL_BROKEN, QUANTITY_DISCREPANCY, CHECKOUT_OVERDUE, ITEM_MISSING
    item: str
    principal: str
    summary: str
    key: str


class ItemRepository(Protocol):
    async def add(self, item: Item) -> None:
        """Raises AlreadyExists when the seal is in use by an item not yet disposed."""

    async def get(self, item_id: str) -> Item | None: ...
    async def update(self, item: Item) -> None:
        """Write a changed item; raises Aborted if someone else changed it first."""

    async def seal_in_use(self, seal: str) -> bool: ...
    async def at_location(self, location: str) -> Sequence[Item]: ...
    async def count_at(self, location: str) -> int:
        """How many items rest at `location` (stored, awaiting or decided)."""

    async def overdue(self, now: datetime, limit: int) -> Sequence[Item]: ...


class ItemListing(Protocol):
    """ListItems' read path, outside any transaction (store.SqlItemListing)."""

    async def list(self, query: ItemQuery) -> Sequence[Item]:
        """One page, filtered, in id order after `query.page.after`."""


class EventRepository(Protocol):
    async def append(self, link: chain.Link) -> None: ...
    async def links(self, item: str) -> list[chain.Link]:
        """The stored chain of `item` (items/{id}) in sequence order."""


class SeizureRepository(Protocol):
    async def add(self, seizure: Seizure) -> None: ...
    async def get(self, seizure_id: str) -> Seizure | None: ...
    async def by_request(self, officer: str, request_id: str) -> Seizure | None: ...


class InventoryRepository(Protocol):
    async def add(self, inventory: Inventory) -> None: ...
    async def get(self, inventory_id: str) -> Inventory | None: ...
    async def update(self, inventory: Inventory) -> None: ...


class LocationRepository(Protocol):
    async def add(self, location: Location) -> None:
        """Raises AlreadyExists when the id or the barcode is taken."""

    async def get(self, location_id: str) -> Location | None: ...
    async def by_barcode(self, barcode: str) -> Location | None: ...
    async def list(self, page: Page) -> Sequence[Location]: ...


@dataclass(frozen=True)
class SignedAcceptance:
    """A receiver's acceptance of a hand-over, signed with the receiver's own key: the XAdES
    document and its SHA-256, which the ACCEPTED event (number `sequence`) records."""

    item: str
    sequence: int
    receiver: str
    signed_xml: bytes
    sha256: str


class AcceptanceRepository(Protocol):
    async def add(self, acceptance: SignedAcceptance) -> None: ...
    async def get(self, item: str, sequence: int) -> SignedAcceptance | None: ...


class UnitOfWork(ports.UnitOfWork, Protocol):
    @property
    def items(self) -> ItemRepository: ...
    @property
    def events(self) -> EventRepository: ...
    @property
    def seizures(self) -> SeizureRepository: ...
    @property
    def inventories(self) -> InventoryRepository: ...
    @property
    def outbox(self) -> OutboxWriter: ...
    @property
    def inbox(self) -> Inbox: ...
    @property
    def approvals(self) -> ApprovalRepository: ...
    @property
    def locations(self) -> LocationRepository: ...
    @property
    def acceptances(self) -> AcceptanceRepository: ...


class Signer(Protocol):
    async def sign(self, document: bytes, signer_id: str) -> bytes: ...


class PdfSigner(Protocol):
    async def sign(self, pdf: bytes, signer_id: str, reason: str) -> bytes:
        """The PDF with a PAdES signature by `signer_id` added."""


class Verifier(Protocol):
    def verify(self, data: bytes) -> Verdict:
        """Checks an XAdES signature and the chain of its certificate (signing/xades.py)."""


class Anchors(Protocol):
    async def newest(self, item: str) -> chain.Head | None:
        """The newest chain head of `item` recorded outside the custody tables."""


class AlertSink(Protocol):
    async def raise_alerts(self, alerts: Sequence[CustodyAlert]) -> None: ...


@dataclass(frozen=True)
class CustodyConfig:
    tolerance: Tolerance
    # Seizures worth more (in EUR) are notified to the central seizure agency.
    notice_threshold: Decimal
    central_agency: str
    # The partner that receives every custody event, and with it every chain head.
    events_partner: str
    prosecutor: str
    signer_id: str


@dataclass(frozen=True)
class Change:
    """One item's change inside a use case: its new event, and what to tell partners."""

    item: Item
    type: str
    data: Mapping[str, str]


@dataclass(frozen=True)
class Ports:
    """What every custody service receives from the composition root."""

    uow: Callable[[], UnitOfWork]
    # The same repositories outside a transaction, for reads of one statement.
    reads: Callable[[], UnitOfWork]
    listing: ItemListing
    four_eyes: FourEyes
    signer: Signer
    verifier: Verifier
    pdf_signer: PdfSigner
    anchors: Anchors
    alerts: AlertSink
    # Adds a resource name (an item's new head) to the audit record of the current call.
    annotate: Callable[[str], None]
    clock: Callable[[], datetime]
    config: CustodyConfig


class Ledger:
    """The ports and the recording shared by the custody services (one per capability)."""

    def __init__(self, ports: Ports) -> None:
        self._uow = ports.uow
        self._reads = ports.reads
        self._listing = ports.listing
        self._four_eyes = ports.four_eyes
        self._signer = ports.signer
        self._verifier = ports.verifier
        self._pdf_signer = ports.pdf_signer
        self._anchors = ports.anchors
        self._alerts = ports.alerts
        self._annotate = ports.annotate
        self._clock = ports.clock
        self.config = ports.config

    # -- recording -------------------------------------------------------------------------

    async def _record(
        self, uow: UnitOfWork, change: Change, actor: str, now: datetime, *, new: bool = False
    ) -> None:
        """Append the event, move the head, queue the anchor message: one transaction."""
        item = change.item
        previous = chain.Head(item.chain_length, item.chain_head) if item.chain_length else None
        event = chain.Event(
            item.name, item.chain_length + 1, change.type, now, actor, dict(change.data)
        )
        link = chain.append(previous, event)
        item.chain_length, item.chain_head = event.sequence, link.hash
        item.update_time = now
        # The row before the event: a concurrent writer of the same item fails on the row's
        # revision (Aborted), never on the event's key.
        if new:
            await uow.items.add(item)
        else:
            await uow.items.update(item)
        await uow.events.append(link)
        payload = {
            "item": item.name,
            "sequence": event.sequence,
            "event_type": event.type,
            "chain_head": link.hash,
            "state": item.state.value,
        }
        await uow.outbox.add(
            OutgoingMessage(
                recipient=self.config.events_partner,
                message_type=MESSAGE_TYPE_EVENT,
                payload=json.dumps(payload, sort_keys=True).encode(),
                subject_ref=f"{item.name}@{event.sequence}:{link.hash}",
            )
        )

    async def _apply(
        self, uow: UnitOfWork, changes: Sequence[Change], actor: str, now: datetime
    ) -> None:
        for change in changes:
            await self._record(uow, change, actor, now)

    def _anchor(self, items: Sequence[Item]) -> None:
        for item in items:
            self._annotate(f"{item.name}@{item.chain_length}:{item.chain_head}")

    async def _load(self, uow: UnitOfWork, name: str, field: str = "name") -> Item:
        found = await uow.items.get(item_id(name, field))
        if found is None:
            raise NotFound("ITEM_NOT_FOUND", f"no {name}", metadata={"name": name})
        return found

    @staticmethod
    async def _location(
        uow: UnitOfWork, name: str, field: str = "location", *, barcode: str = ""
    ) -> Location:
        """The location named (locations/{id}) or scanned (its barcode); NOT_FOUND if none."""
        if barcode:
            found = await uow.locations.by_barcode(barcode)
            wanted = {"barcode": barcode}
        else:
            v: list[FieldViolation] = []
            check_location(field, name, v)
            if v:
                raise InvalidArgument.of(v)
            found = await uow.locations.get(name.removeprefix("locations/"))
            wanted = {"location": name}
        if found is None:
            raise NotFound(
                "LOCATION_NOT_FOUND",
                f"no location {barcode or name}; create it first (CreateLocation)",
                metadata=wanted,
                violations=[FieldViolation(f"{field}_barcode" if barcode else field, "unknown")],
            )
        return found

    @staticmethod
    def _require_custody(item: Item, scope: Scope) -> None:
        if scope.in_custody_only and item.custodian != scope.actor:
            raise PermissionDenied(
                "NOT_IN_YOUR_CUSTODY",
                "only the item's current custodian may do this",
                metadata={"item": item.name},
            )

    async def _change_one(
        self,
        name: str,
        scope: Scope,
        act: Callable[[Item], tuple[str, Mapping[str, str]]],
        *,
        custody: bool = True,
    ) -> Item:
        async with self._uow() as uow:
            item = await self._load(uow, name)
            if custody:
                self._require_custody(item, scope)
            event_type, data = act(item)
            now = self._clock()
            await self._apply(uow, [Change(item, event_type, data)], scope.actor, now)
            await uow.commit()
        self._anchor([item])
        return item
