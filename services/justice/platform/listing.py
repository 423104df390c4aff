"""List requests (AIP-132/158/160): page tokens and the `field = "value" AND ...` filter."""

from __future__ import annotations

import base64
import binascii
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from justice.platform.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# How many pages a restricted list reads at most to fill one page of visible rows.
SCOPED_SCAN_PAGES = 50
T = TypeVar("T")

_TERM = re.compile(r'^\s*([a-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z0-9_./-]+))\s*$')


@dataclass(frozen=True)
class Page:
    size: int
    after: str  # the last key of the previous page, "" for the first


def page(page_size: int, page_token: str) -> Page:
    if page_size < 0:
        raise InvalidArgument.of([FieldViolation("page_size", "not negative")])
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if not page_token:
        return Page(size, "")
    try:
        after = base64.urlsafe_b64decode(page_token.encode("ascii")).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidArgument.of([FieldViolation("page_token", "not a token we issued")]) from None
    return Page(size, after)


def next_token(last_key: str | None) -> str:
    if last_key is None:
        return ""
    return base64.urlsafe_b64encode(last_key.encode("utf-8")).decode("ascii")


def parse_filter(text: str, fields: Mapping[str, Callable[[str], Any]]) -> dict[str, Any]:
    """Parse a conjunction of equality terms; each field's converter may raise ValueError."""
    result: dict[str, Any] = {}
    if not text.strip():
        return result
    for term in re.split(r"\s+AND\s+", text.strip()):
        match = _TERM.match(term)
        if match is None:
            raise InvalidArgument.of(
                [
                    FieldViolation(
                        "filter", f'expected field = "value" terms joined by AND: {term!r}'
                    )
                ]
            )
        name, quoted, bare = match.groups()
        if name not in fields:
            raise InvalidArgument.of(
                [FieldViolation("filter", f"unknown field {name!r}; known: {', '.join(fields)}")]
            )
        raw = bare if quoted is None else re.sub(r"\\(.)", r"\1", quoted)
        try:
            result[name] = fields[name](raw)
        except ValueError as error:
            raise InvalidArgument.of([FieldViolation("filter", f"{name}: {error}")]) from None
    return result


async def visible_page(
    fetch: Callable[[Page], Awaitable[Sequence[T]]],
    visible: Callable[[T], bool | Awaitable[bool]],
    key: Callable[[T], str],
    first: Page,
) -> list[T]:
    """One page of the rows a restricted caller may see (authorisation conditions that
    storage cannot filter by): reads pages of the same size, keeps the visible rows, and
    stops when the page is full, the rows run out, or after SCOPED_SCAN_PAGES reads."""
    found: list[T] = []
    after = first.after
    for _ in range(SCOPED_SCAN_PAGES):
        batch = await fetch(Page(first.size, after))
        for row in batch:
            seen = visible(row)
            if await seen if inspect.isawaitable(seen) else seen:
                found.append(row)
        if len(batch) < first.size or len(found) >= first.size:
            break
        after = key(batch[-1])
    return found[: first.size]
