"""The custody domain's unit of work in memory: items, their hash-chain events, seizures,
inventories, the outbox, the inbox's processed keys and the four-eyes approvals; with
recording stand-ins for the signers, anchors and alert sink."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from justice.custody import chain
from justice.custody.ledger import CustodyAlert, ItemQuery, SignedAcceptance
from justice.custody.model import Inventory, Item, ItemState, Location, Seizure
from justice.exchange.message import OutgoingMessage
from justice.platform.errors import AlreadyExists
from justice.platform.listing import Page
from justice.security.approvals import ApprovalRequest
from justice.signing.xades import Verdict
from tests.fakes.access import InMemoryApprovals
from tests.fakes.exchange import InMemoryInbox, InMemoryOutbox
from tests.fakes.unit_of_work import InMemoryUnitOfWork, Keyed, Tables


@dataclass
class CustodyTables:
    items: dict[str, Item] = field(default_factory=dict)
    events: dict[str, list[chain.Link]] = field(default_factory=dict)
    seizures: dict[str, Seizure] = field(default_factory=dict)
    inventories: dict[str, Inventory] = field(default_factory=dict)
    outbox: list[OutgoingMessage] = field(default_factory=list)
    claimed: set[str] = field(default_factory=set)
    approvals: dict[str, ApprovalRequest] = field(default_factory=dict)
    locations: dict[str, Location] = field(default_factory=dict)
    acceptances: dict[tuple[str, int], SignedAcceptance] = field(default_factory=dict)


class InMemoryItems(Keyed[Item]):
    def __init__(self, tables: CustodyTables) -> None:
        super().__init__(tables.items, lambda i: i.id)

    async def seal_in_use(self, seal: str) -> bool:
        return any(
            i.spec.seal == seal and i.state is not ItemState.DISPOSED for i in self._rows.values()
        )

    async def at_location(self, location: str) -> Sequence[Item]:
        return [i for i in self._rows.values() if i.location == location]

    async def count_at(self, location: str) -> int:
        return len(await self.at_location(location))

    async def overdue(self, now: datetime, limit: int) -> Sequence[Item]:
        late = [
            i
            for i in self._rows.values()
            if i.state is ItemState.CHECKED_OUT and i.due_time is not None and i.due_time < now
        ]
        return late[:limit]


class InMemoryEvents:
    def __init__(self, tables: CustodyTables) -> None:
        self._rows = tables.events

    async def append(self, link: chain.Link) -> None:
        self._rows.setdefault(link.event.item, []).append(link)

    async def links(self, item: str) -> list[chain.Link]:
        return list(self._rows.get(item, []))


class InMemorySeizures(Keyed[Seizure]):
    def __init__(self, tables: CustodyTables) -> None:
        super().__init__(tables.seizures, lambda s: s.id)

    async def by_request(self, officer: str, request_id: str) -> Seizure | None:
        return next(
            (
                s
                for s in self._rows.values()
                if (s.seizing_officer, s.request_id) == (officer, request_id)
            ),
            None,
        )


class InMemoryInventories(Keyed[Inventory]):
    def __init__(self, tables: CustodyTables) -> None:
        super().__init__(tables.inventories, lambda i: i.id)


class InMemoryItemListing:
    """ListItems' read path over the committed tables."""

    def __init__(self, tables: Tables[CustodyTables]) -> None:
        self._tables = tables

    async def list(self, query: ItemQuery) -> Sequence[Item]:
        rows = sorted(self._tables.state.items.values(), key=lambda i: i.id)
        return [
            i
            for i in rows
            if i.id > query.page.after
            and query.case_number in (None, i.case_number)
            and query.state in (None, i.state)
            and query.custodian in (None, i.custodian)
            and query.location in (None, i.location)
        ][: query.page.size]


class InMemoryLocations:
    def __init__(self, tables: CustodyTables) -> None:
        self._rows = tables.locations

    async def add(self, location: Location) -> None:
        if location.id in self._rows or await self.by_barcode(location.barcode):
            raise AlreadyExists("LOCATION_EXISTS", "the id or the barcode is taken")
        self._rows[location.id] = location

    async def get(self, location_id: str) -> Location | None:
        return self._rows.get(location_id)

    async def by_barcode(self, barcode: str) -> Location | None:
        return next((x for x in self._rows.values() if x.barcode == barcode), None)

    async def list(self, page: Page) -> Sequence[Location]:
        rows = sorted(self._rows.values(), key=lambda x: x.id)
        return [x for x in rows if x.id > page.after][: page.size]


class InMemoryAcceptances:
    def __init__(self, tables: CustodyTables) -> None:
        self._rows = tables.acceptances

    async def add(self, acceptance: SignedAcceptance) -> None:
        self._rows[(acceptance.item, acceptance.sequence)] = acceptance

    async def get(self, item: str, sequence: int) -> SignedAcceptance | None:
        return self._rows.get((item, sequence))


class CustodyUnit(InMemoryUnitOfWork[CustodyTables]):
    @property
    def items(self) -> InMemoryItems:
        return InMemoryItems(self.staged)

    @property
    def events(self) -> InMemoryEvents:
        return InMemoryEvents(self.staged)

    @property
    def seizures(self) -> InMemorySeizures:
        return InMemorySeizures(self.staged)

    @property
    def inventories(self) -> InMemoryInventories:
        return InMemoryInventories(self.staged)

    @property
    def outbox(self) -> InMemoryOutbox:
        return InMemoryOutbox(self.staged.outbox)

    @property
    def inbox(self) -> InMemoryInbox:
        return InMemoryInbox(self.staged.claimed)

    @property
    def locations(self) -> InMemoryLocations:
        return InMemoryLocations(self.staged)

    @property
    def acceptances(self) -> InMemoryAcceptances:
        return InMemoryAcceptances(self.staged)

    @property
    def approvals(self) -> InMemoryApprovals:
        return InMemoryApprovals(self.staged.approvals)


class RecordingSigner:
    """Signs nothing: marks the document, and remembers who signed what."""

    def __init__(self) -> None:
        self.signed: list[str] = []

    async def sign(self, document: bytes, signer_id: str, reason: str = "") -> bytes:
        self.signed.append(signer_id)
        return document


class RecordingVerifier:
    """Vouches for what the recording signer signed last, as the signer it recorded."""

    def __init__(self, signer: RecordingSigner) -> None:
        self._signer = signer

    def verify(self, data: bytes) -> Verdict:
        signer = self._signer.signed[-1] if self._signer.signed else None
        return Verdict(integrity_ok=True, reason="OK", signer_id=signer, chains_to_ca=True)


class NoAnchors:
    async def newest(self, item: str) -> chain.Head | None:
        return None


class RecordingAlerts:
    def __init__(self) -> None:
        self.raised: list[CustodyAlert] = []

    async def raise_alerts(self, alerts: Sequence[CustodyAlert]) -> None:
        self.raised.extend(alerts)
