"""The per-item custody chain: hash_n = sha256(hash_{n-1} || canonical(event_n)).

`canonical` is deliberately plain so that a court's own short script can recompute it
(custody/verify_certificate.py does, with the standard library only): UTF-8 JSON of
{"actor", "data", "item", "sequence", "time", "type"} with sorted keys, no spaces and
non-ASCII kept; `data` maps strings to strings; `time` is UTC with microseconds and a Z.
The previous hash enters as its 32 raw bytes; the first event's previous hash is 32 zeros.

Pure: imports no infrastructure.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

GENESIS = "0" * 64


@dataclass(frozen=True)
class Event:
    item: str  # items/{item}
    sequence: int  # 1, 2, ... per item
    type: str  # SEIZED, TRANSFERRED, ACCEPTED, ...
    time: datetime
    actor: str
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Link:
    """An event at its place in the chain."""

    event: Event
    previous_hash: str
    hash: str


@dataclass(frozen=True)
class Head:
    sequence: int
    hash: str


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(event: Event) -> bytes:
    fields = {
        "actor": event.actor,
        "data": {str(k): str(v) for k, v in event.data.items()},
        "item": event.item,
        "sequence": event.sequence,
        "time": iso(event.time),
        "type": event.type,
    }
    return json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def link_hash(previous_hash: str, event: Event) -> str:
    return hashlib.sha256(bytes.fromhex(previous_hash) + canonical(event)).hexdigest()


def append(previous: Head | None, event: Event) -> Link:
    """The link of `event` after the chain ending in `previous` (None: the first event)."""
    previous_hash = previous.hash if previous else GENESIS
    expected = (previous.sequence if previous else 0) + 1
    if event.sequence != expected:
        raise ValueError(f"event {event.sequence} does not follow {expected - 1}")
    return Link(event, previous_hash, link_hash(previous_hash, event))


class Problem(enum.StrEnum):
    HASH_MISMATCH = "HASH_MISMATCH"  # an event was edited (or events reordered)
    SEQUENCE_GAP = "SEQUENCE_GAP"  # an event was deleted or sequences rewritten
    WRONG_ITEM = "WRONG_ITEM"  # an event of another item was moved in
    HEAD_MISMATCH = "HEAD_MISMATCH"  # the chain ends elsewhere than the item records
    TRUNCATED = "TRUNCATED"  # newer events were anchored outside than the chain holds


@dataclass(frozen=True)
class ChainCheck:
    length: int
    head: str
    problem: Problem | None = None
    first_bad_sequence: int = 0
    anchored: Head | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify(item: str, links: Sequence[Link], recorded: Head, anchored: Head | None) -> ChainCheck:
    """Recompute the stored chain (in sequence order) and compare its end with the head the
    item records and with the newest head anchored outside the custody tables."""
    previous = GENESIS
    for position, link in enumerate(links, start=1):
        event = link.event
        problem = None
        if event.item != item:
            problem = Problem.WRONG_ITEM
        elif event.sequence != position:
            problem = Problem.SEQUENCE_GAP
        elif link.previous_hash != previous or link_hash(previous, event) != link.hash:
            problem = Problem.HASH_MISMATCH
        if problem is not None:
            return ChainCheck(len(links), previous, problem, position, anchored)
        previous = link.hash
    head = previous
    length = len(links)
    if anchored is not None:
        if anchored.sequence > length:
            return ChainCheck(length, head, Problem.TRUNCATED, length + 1, anchored)
        if links[anchored.sequence - 1].hash != anchored.hash:
            return ChainCheck(length, head, Problem.HASH_MISMATCH, anchored.sequence, anchored)
    if recorded.sequence != length or recorded.hash != head:
        at = min(recorded.sequence, length) or 1
        return ChainCheck(length, head, Problem.HEAD_MISMATCH, at, anchored)
    return ChainCheck(length, head, None, 0, anchored)
