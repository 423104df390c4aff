"""The hash chain: each record's hash covers its canonical fields and the previous hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum

from justice.audit.model import AuditEntry, AuditRecord

GENESIS_HASH = "0" * 64


def canonical(sequence: int, entry: AuditEntry, previous_hash: str) -> bytes:
    """The bytes a record's hash covers; any change to a stored field changes them."""
    moment = entry.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields = [
        sequence,
        moment,
        entry.principal,
        entry.agency,
        entry.unit,
        entry.service,
        entry.method,
        list(entry.resources),
        entry.purpose,
        entry.outcome,
        entry.reason,
        entry.peer,
        previous_hash,
    ]
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def chain(entries: Iterable[AuditEntry], sequence: int, previous_hash: str) -> list[AuditRecord]:
    """Give entries consecutive sequences after `sequence`, each hash covering the one before."""
    records = []
    for entry in entries:
        sequence += 1
        digest = hashlib.sha256(canonical(sequence, entry, previous_hash)).hexdigest()
        records.append(AuditRecord(sequence, entry, previous_hash, digest))
        previous_hash = digest
    return records


class ChainProblem(StrEnum):
    HASH_MISMATCH = "HASH_MISMATCH"
    LINK_MISMATCH = "LINK_MISMATCH"
    SEQUENCE_GAP = "SEQUENCE_GAP"


@dataclass(frozen=True)
class ChainCheck:
    checked: int
    broken_at: int = 0
    problem: ChainProblem | None = None
    head_sequence: int = 0
    head_hash: str = ""

    @property
    def intact(self) -> bool:
        return self.problem is None


@dataclass
class ChainVerifier:
    """Checks records fed in sequence order, in as many batches as needed.

    `expected_sequence`/`previous_hash` describe the record just before the first one fed;
    a verifier for the whole chain starts at (1, GENESIS_HASH).
    """

    expected_sequence: int = 1
    previous_hash: str = GENESIS_HASH
    checked: int = 0
    broken_at: int = 0
    problem: ChainProblem | None = None
    head_sequence: int = 0

    def feed(self, records: Sequence[AuditRecord]) -> bool:
        """False once a break was found (later records are not looked at)."""
        for record in records:
            if self.problem is not None:
                return False
            self.checked += 1
            if record.sequence != self.expected_sequence:
                # Deleted or reordered rows: the first position whose record is not the next one.
                self._break(min(record.sequence, self.expected_sequence), ChainProblem.SEQUENCE_GAP)
            elif record.previous_hash != self.previous_hash:
                self._break(record.sequence, ChainProblem.LINK_MISMATCH)
            elif (
                hashlib.sha256(
                    canonical(record.sequence, record.entry, record.previous_hash)
                ).hexdigest()
                != record.hash
            ):
                self._break(record.sequence, ChainProblem.HASH_MISMATCH)
            else:
                self.expected_sequence += 1
                self.previous_hash = record.hash
                self.head_sequence = record.sequence
        return self.problem is None

    def _break(self, sequence: int, problem: ChainProblem) -> None:
        self.broken_at = sequence
        self.problem = problem

    def result(self) -> ChainCheck:
        return ChainCheck(
            checked=self.checked,
            broken_at=self.broken_at,
            problem=self.problem,
            head_sequence=self.head_sequence,
            head_hash=self.previous_hash if self.problem is None else "",
        )
