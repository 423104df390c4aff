"""What the fine service needs from outside, as Protocols: its repositories and unit of
work, the outbox, the bus's copies of messages and the letter renderer; and the values that
cross those ports (FineQuery, FineFigures, LetterDocuments).

Adapters implement these (justice.fines.store on a database, exchange.stream_erasure on
NATS, fines.notice for letters); the service only ever names the Protocols, and a store
never imports the service to learn the values it returns.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from justice.exchange.message import Inbox, OutboxWriter
from justice.fines.letter import LetterKind
from justice.fines.model import Fine, FineState, Lookup, Money, Payment
from justice.platform import ports
from justice.platform.listing import Page


@dataclass(frozen=True)
class FineQuery:
    page: Page
    state: FineState | None = None
    registration_country: str | None = None
    plate: str | None = None
    offence: str | None = None
    offence_after: datetime | None = None
    offence_before: datetime | None = None


@dataclass(frozen=True)
class FineFigures:
    """The columns statistics are made of: none of them is personal data."""

    state: FineState
    registration_country: str
    offence: str
    amount: Money
    paid: Money
    notices_sent: int
    lookups_sent: int
    lookup_failed: bool


class FineRepository(Protocol):
    async def add(self, fine: Fine) -> None: ...
    async def get(self, fine_id: str) -> Fine | None: ...
    async def by_request(self, request_id: str) -> Fine | None: ...
    async def by_reference(self, reference: str) -> Fine | None: ...
    async def update(self, fine: Fine) -> None:
        """Write a changed fine; raises Aborted if someone else changed it first."""

    async def list(self, query: FineQuery) -> Sequence[Fine]: ...
    async def escalatable(self, after: str, limit: int) -> Sequence[Fine]: ...
    async def figures(self) -> Sequence[FineFigures]: ...
    async def count_lookup(self, fine_id: str, failed: bool) -> None: ...
    async def erasable(self, closed_before: datetime, limit: int) -> Sequence[str]: ...
    async def erase(self, fine_id: str) -> None:
        """Personal data (plate, persons, vehicle) out; the statistics' columns stay."""


class LookupRepository(Protocol):
    async def add(self, lookup: Lookup) -> None: ...
    async def get(self, lookup_id: str) -> Lookup | None: ...
    async def save(self, lookup: Lookup) -> None: ...
    async def due(self, now: datetime, limit: int) -> Sequence[Lookup]: ...


class PaymentRepository(Protocol):
    async def get(self, payment_id: str) -> Payment | None: ...
    async def add(self, payment: Payment) -> None: ...


class LetterRepository(Protocol):
    async def add(self, fine_id: str, seq: int, letter: LetterDocuments, now: datetime) -> None: ...
    async def of(self, fine_id: str) -> Sequence[LetterDocuments]: ...
    async def erase(self, fine_id: str) -> None: ...


class FineOutbox(OutboxWriter, Protocol):
    async def about(self, resources: Sequence[str]) -> list[str]:
        """The ids of the messages written about any of `resources`."""

    async def forget(self, subject_ref: str) -> None:
        """Blank the payloads of the sent messages about `subject_ref`."""


class MessageCopies(Protocol):
    """The copies the message bus keeps (exchange.stream_erasure.StreamErasure)."""

    async def erase(self, envelope_ids: Collection[str]) -> int:
        """Erase the copies of these messages and of the replies to them."""


class Letters(Protocol):
    """Renders and signs a letter (fines.notice.NoticeRenderer)."""

    async def render(self, fine: Fine, kind: LetterKind) -> LetterDocuments: ...
    def warm(self) -> None:
        """Get ready for letters soon to come (start the renderers), without waiting."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class LetterDocuments:
    kind: LetterKind
    language: str
    pdf: bytes
    signed_xml: bytes


class UnitOfWork(ports.UnitOfWork, Protocol):
    @property
    def fines(self) -> FineRepository: ...
    @property
    def lookups(self) -> LookupRepository: ...
    @property
    def payments(self) -> PaymentRepository: ...
    @property
    def letters(self) -> LetterRepository: ...
    @property
    def outbox(self) -> FineOutbox: ...
    @property
    def inbox(self) -> Inbox: ...
