"""A unit of work over tables held in memory, with a transaction's all-or-nothing.

Each domain keeps its tables in one dataclass; a unit works on a deep copy of it and commit
puts the copy in place, so a use case that raises before committing changes nothing (as a
rolled-back database transaction would)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from types import TracebackType
from typing import Generic, Self, TypeVar

T = TypeVar("T")


class Tables(Generic[T]):
    """The committed state of a domain's tables, and how many commits it has seen."""

    def __init__(self, state: T) -> None:
        self.state = state
        self.commits = 0


class InMemoryUnitOfWork(Generic[T]):
    def __init__(self, tables: Tables[T]) -> None:
        self._tables = tables
        self.staged: T = tables.state

    async def __aenter__(self) -> Self:
        self.staged = copy.deepcopy(self._tables.state)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Whatever was not committed is dropped with the copy."""

    async def commit(self) -> None:
        self._tables.state = copy.deepcopy(self.staged)
        self._tables.commits += 1


class Keyed(Generic[T]):
    """One table's rows by their key: add, get, and update (which replaces the row)."""

    def __init__(self, rows: dict[str, T], key: Callable[[T], str]) -> None:
        self._rows = rows
        self._key = key

    async def add(self, row: T) -> None:
        self._rows[self._key(row)] = row

    async def get(self, key: str) -> T | None:
        return self._rows.get(key)

    async def update(self, row: T) -> None:
        self._rows[self._key(row)] = row
