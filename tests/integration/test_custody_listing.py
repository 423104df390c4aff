"""ListItems' hot path (SqlItemListing over plain driver connections) on both databases: an
item read through it equals the one the ORM reads, with every field of its description
(decimal value, photos, category details, times to the microsecond), and each filter the
issue lists (case, state, category, location, custodian, seal) finds it and only it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from justice.custody.ledger import ItemQuery
from justice.custody.model import (
    Cash,
    Category,
    Decision,
    DecisionKind,
    Drugs,
    Item,
    ItemSpec,
    ItemState,
    Money,
)
from justice.custody.store import CustodyTransaction, SqlItemListing
from justice.platform.db import Database, plain_reads
from justice.platform.listing import Page

NOW = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
PAGE = Page(50, "")


def _items() -> list[Item]:
    drugs = ItemSpec(
        Category.DRUGS,
        "pills, bag \u00e9",
        Money(Decimal("1234.50"), "EUR"),
        ("evidence/p1", "evidence/p2"),
        "LIST-SEAL-1",
        3,
        Drugs("MDMA", Decimal("12.340"), "g"),
    )
    cash = ItemSpec(
        Category.CASH,
        "envelope",
        None,
        (),
        "LIST-SEAL-2",
        1,
        Cash(Money(Decimal("150.00"), "EUR"), ((Decimal("50"), 3),), ("officer-1", "officer-2")),
    )
    document = ItemSpec(Category.DOCUMENT, "letter", None, (), "LIST-SEAL-3", 1, None)
    first = Item("list00000000000000000001", "s1", "LIST/1", drugs, "custodian-1", NOW, NOW)
    second = Item("list00000000000000000002", "s1", "LIST/1", cash, "custodian-2", NOW, NOW)
    third = Item("list00000000000000000003", "s2", "LIST/2", document, "custodian-1", NOW, NOW)
    first.state, first.location = ItemState.IN_STORAGE, "locations/list.shelf"
    first.holds, first.on_hold = ("objection-1",), True
    first.decision = Decision(DecisionKind.KEEP_AS_EVIDENCE, "ref-1", "2026-03-01", "court")
    first.due_time = NOW
    return [first, second, third]


async def test_listed_items_equal_stored_ones_and_every_filter_finds_them(
    database: Database,
) -> None:
    items = _items()
    async with CustodyTransaction(database.sessions) as tx:
        for item in items:
            await tx.items.add(item)
        await tx.commit()
    reads = plain_reads(database.url)
    listing = SqlItemListing(reads)
    try:
        listed = await listing.list(ItemQuery(page=PAGE))
        mine = [i for i in listed if i.id.startswith("list")]
        async with CustodyTransaction(database.read_sessions) as tx:
            stored = [await tx.items.get(i.id) for i in items]
        assert mine == stored == items
        first = items[0]
        for terms in (
            {"case_number": "LIST/1", "category": Category.DRUGS},
            {"state": ItemState.IN_STORAGE},
            {"location": "locations/list.shelf"},
            {"custodian": "custodian-1", "case_number": "LIST/1"},
            {"seal": "LIST-SEAL-1"},
        ):
            found = await listing.list(ItemQuery(page=PAGE, **terms))  # type: ignore[arg-type]
            assert found == [first], terms
        after = await listing.list(
            ItemQuery(page=replace(PAGE, after=first.id), case_number="LIST/1")
        )
        assert after == [items[1]]
    finally:
        await reads.close()
