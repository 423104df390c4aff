"""The fines domain's unit of work in memory: fines, owner lookups, payments, letters, the
outbox (with the payloads it forgets) and the inbox's processed keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from justice.exchange.message import OutgoingMessage
from justice.fines.model import Fine, FineState, Lookup, LookupPhase, Payment
from justice.fines.ports import FineFigures, FineQuery, LetterDocuments
from tests.fakes.exchange import InMemoryInbox, InMemoryOutbox
from tests.fakes.unit_of_work import InMemoryUnitOfWork, Keyed


@dataclass
class FineTables:
    fines: dict[str, Fine] = field(default_factory=dict)
    lookups: dict[str, Lookup] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)
    letters: dict[str, list[LetterDocuments]] = field(default_factory=dict)
    outbox: list[OutgoingMessage] = field(default_factory=list)
    claimed: set[str] = field(default_factory=set)


class InMemoryFines(Keyed[Fine]):
    def __init__(self, tables: FineTables) -> None:
        super().__init__(tables.fines, lambda f: f.fine_id)

    async def by_request(self, request_id: str) -> Fine | None:
        return next((f for f in self._rows.values() if f.request_id == request_id), None)

    async def by_reference(self, reference: str) -> Fine | None:
        return next((f for f in self._rows.values() if f.payment_reference == reference), None)

    async def list(self, query: FineQuery) -> Sequence[Fine]:
        rows = sorted(self._rows.values(), key=lambda f: f.fine_id)
        return [f for f in rows if f.fine_id > query.page.after and query.state in (None, f.state)][
            : query.page.size
        ]

    async def escalatable(self, after: str, limit: int) -> Sequence[Fine]:
        return []

    async def figures(self) -> Sequence[FineFigures]:
        return []

    async def count_lookup(self, fine_id: str, failed: bool) -> None:
        pass

    async def erasable(self, closed_before: datetime, limit: int) -> Sequence[str]:
        return [
            f.fine_id
            for f in self._rows.values()
            if f.state is FineState.CLOSED and f.close_time and f.close_time <= closed_before
        ][:limit]

    async def erase(self, fine_id: str) -> None:
        self._rows.pop(fine_id, None)


class InMemoryLookups(Keyed[Lookup]):
    def __init__(self, tables: FineTables) -> None:
        super().__init__(tables.lookups, lambda x: x.lookup_id)

    async def save(self, lookup: Lookup) -> None:
        self._rows[lookup.lookup_id] = lookup

    async def due(self, now: datetime, limit: int) -> Sequence[Lookup]:
        waiting = (LookupPhase.WAITING, LookupPhase.BACKOFF)
        due = [x for x in self._rows.values() if x.phase in waiting and x.deadline <= now]
        return sorted(due, key=lambda x: x.deadline)[:limit]


class InMemoryPayments(Keyed[Payment]):
    def __init__(self, tables: FineTables) -> None:
        super().__init__(tables.payments, lambda p: p.payment_id)


class InMemoryLetters:
    def __init__(self, tables: FineTables) -> None:
        self._rows = tables.letters

    async def add(self, fine_id: str, seq: int, letter: LetterDocuments, now: datetime) -> None:
        self._rows.setdefault(fine_id, []).append(letter)

    async def of(self, fine_id: str) -> Sequence[LetterDocuments]:
        return list(self._rows.get(fine_id, []))

    async def erase(self, fine_id: str) -> None:
        self._rows.pop(fine_id, None)


class FineUnit(InMemoryUnitOfWork[FineTables]):
    @property
    def fines(self) -> InMemoryFines:
        return InMemoryFines(self.staged)

    @property
    def lookups(self) -> InMemoryLookups:
        return InMemoryLookups(self.staged)

    @property
    def payments(self) -> InMemoryPayments:
        return InMemoryPayments(self.staged)

    @property
    def letters(self) -> InMemoryLetters:
        return InMemoryLetters(self.staged)

    @property
    def outbox(self) -> InMemoryOutbox:
        return InMemoryOutbox(self.staged.outbox)

    @property
    def inbox(self) -> InMemoryInbox:
        return InMemoryInbox(self.staged.claimed)
