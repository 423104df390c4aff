"""Seized items: the state machine walked edge by edge, the field rules, and the hash chain."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from justice.custody import chain
from justice.custody.model import (
    TRANSITIONS,
    Cash,
    Category,
    Decision,
    DecisionKind,
    Disposal,
    Drugs,
    Firearm,
    Item,
    ItemSpec,
    ItemState,
    Location,
    LocationKind,
    Money,
    Outcome,
    Quantity,
    RawDenomination,
    RawItem,
    Seizure,
    Tolerance,
    check_new_location,
    check_seizure,
)
from justice.platform.errors import FailedPrecondition, InvalidArgument, PermissionDenied

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def item(category: Category = Category.OTHER, state: ItemState = ItemState.SEIZED) -> Item:
    details = None
    if category is Category.DRUGS:
        details = Drugs("cannabis", Decimal("103.5"), "g")
    if category is Category.CASH:
        details = Cash(Money(Decimal("3000"), "EUR"), (), ("alice", "bob"))
    if category is Category.FIREARM:
        details = Firearm("Glock", "17", "9mm", "ABC123")
    spec = ItemSpec(category, "thing", None, (), "SEAL-1", 1, details)
    return Item("i1", "s1", "C-1", spec, "officer", NOW, NOW, state=state)


@pytest.mark.parametrize(
    ("source", "target"),
    [(s, t) for s in ItemState for t in ItemState],
    ids=lambda s: s.value,
)
def test_every_transition_is_allowed_exactly_when_the_table_says(
    source: ItemState, target: ItemState
) -> None:
    subject = item(state=source)
    if target in TRANSITIONS[source]:
        subject.move_to(target)
        assert subject.state is target
    else:
        with pytest.raises(FailedPrecondition) as refused:
            subject.move_to(target)
        assert refused.value.reason == "ILLEGAL_TRANSITION"
        assert refused.value.metadata == {
            "from": source.value,
            "to": target.value,
            "item": "items/i1",
        }
        assert subject.state is source


def test_disposed_is_final_and_missing_only_comes_back_to_storage() -> None:
    assert TRANSITIONS[ItemState.DISPOSED] == frozenset()
    assert TRANSITIONS[ItemState.MISSING] == {ItemState.IN_STORAGE}


def test_a_hold_blocks_disposal_until_released() -> None:
    subject = item(state=ItemState.DECIDED)
    subject.decision = Decision(DecisionKind.FORFEIT, "D-1", "2026-03-01", "PK Antwerpen")
    subject.place_hold("objection-1")
    with pytest.raises(FailedPrecondition) as refused:
        subject.dispose(Disposal())
    assert refused.value.reason == "ITEM_ON_HOLD"
    subject.release_hold("objection-1")
    assert subject.dispose(Disposal()) is Outcome.FORFEITED
    assert subject.state is ItemState.DISPOSED


def test_transfer_returns_to_the_resting_state_it_left() -> None:
    subject = item(state=ItemState.AWAITING_DECISION)
    subject.transfer("clerk")
    assert subject.state is ItemState.IN_TRANSIT
    with pytest.raises(PermissionDenied) as denied:
        subject.accept("someone-else", "")
    assert denied.value.reason == "NOT_THE_RECEIVER"
    subject.accept("clerk", "locations/court.r1.s1")
    assert (subject.state, subject.custodian) == (ItemState.AWAITING_DECISION, "clerk")


def test_a_refused_hand_over_before_storage_is_seized_again() -> None:
    subject = item(state=ItemState.SEIZED)
    subject.transfer("clerk")
    subject.reject("clerk")
    assert (subject.state, subject.custodian) == (ItemState.SEIZED, "officer")
    subject.transfer("clerk")
    subject.accept("clerk", "")
    assert subject.state is ItemState.IN_STORAGE


def test_a_rejected_transfer_stays_with_the_sender() -> None:
    subject = item(state=ItemState.IN_STORAGE)
    subject.transfer("clerk")
    subject.reject("clerk")
    assert (subject.state, subject.custodian) == (ItemState.IN_STORAGE, "officer")


def test_check_in_needs_a_checked_out_item() -> None:
    subject = item(state=ItemState.IN_STORAGE)
    with pytest.raises(FailedPrecondition) as refused:
        subject.check_in("")
    assert refused.value.reason == "NOT_CHECKED_OUT"
    subject.check_out("lab", NOW + timedelta(days=1))
    subject.check_in("")
    assert subject.state is ItemState.IN_STORAGE
    assert subject.due_time is None


@pytest.mark.parametrize("state", [s for s in ItemState])
def test_a_decision_is_taken_on_an_item_at_rest(state: ItemState) -> None:
    subject = item(state=state)
    decision = Decision(DecisionKind.DESTROY, "D-1", "2026-03-01", "PK")
    if state in (ItemState.SEIZED, ItemState.IN_STORAGE, ItemState.AWAITING_DECISION):
        subject.decide(decision)
        assert subject.state is ItemState.DECIDED
    else:
        with pytest.raises(FailedPrecondition):
            subject.decide(decision)


def test_four_eyes_for_strict_categories_and_any_destruction() -> None:
    for category in Category:
        strict = category in (Category.CASH, Category.DRUGS, Category.FIREARM)
        assert item(category).needs_four_eyes() is strict
    destroyed = item(Category.DOCUMENT)
    destroyed.decision = Decision(DecisionKind.DESTROY, "D", "2026-03-01", "PK")
    assert destroyed.needs_four_eyes()


def test_disposal_details_the_decision_needs() -> None:
    destroy = item(Category.DRUGS, ItemState.DECIDED)
    destroy.decision = Decision(DecisionKind.DESTROY, "D", "2026-03-01", "PK")
    with pytest.raises(InvalidArgument) as bad:
        destroy.dispose(Disposal())
    assert {v.field for v in bad.value.violations} == {"disposal.witness", "disposal.method"}
    gun = item(Category.FIREARM, ItemState.DECIDED)
    gun.decision = Decision(DecisionKind.RETURN_TO_OWNER, "D", "2026-03-01", "PK")
    with pytest.raises(InvalidArgument) as bad:
        gun.dispose(Disposal())
    assert [v.field for v in bad.value.violations] == ["disposal.licence_reference"]
    kept = item(state=ItemState.DECIDED)
    kept.decision = Decision(DecisionKind.KEEP_AS_EVIDENCE, "D", "2026-03-01", "PK")
    with pytest.raises(FailedPrecondition) as refused:
        kept.dispose(Disposal())
    assert refused.value.reason == "NOTHING_TO_EXECUTE"


def test_three_grams_lost_is_outside_the_default_tolerance() -> None:
    drugs = item(Category.DRUGS)
    assert drugs.discrepancies(Quantity(weight=Decimal("100.5")), Tolerance()) == [
        "weight 100.5 g of 103.5"
    ]
    assert drugs.discrepancies(Quantity(weight=Decimal("103.0")), Tolerance()) == []


def seizure() -> Seizure:
    return Seizure(
        "s1", "C-1", "PV/2026/1", "Antwerpen", NOW, "officer", None, None, "Art. 35 Sv.", False, NOW
    )


def test_a_valid_seizure_of_every_category() -> None:
    raws = [
        RawItem(
            Category.CASH,
            "cash",
            "3000",
            "EUR",
            seal="S1",
            cash_amount="3000.00",
            cash_currency="EUR",
            denominations=(RawDenomination("50", 60),),
            counted_by=("alice", "bob"),
        ),
        RawItem(Category.DRUGS, "bag", seal="S2", drugs=("cannabis", "103.5", "g")),
        RawItem(Category.FIREARM, "gun", seal="S3", firearm=Firearm("Glock", "17", "9mm", "X1")),
        RawItem(Category.DOCUMENT, "passport", seal="S4"),
    ]
    specs = check_seizure(seizure(), raws, NOW)
    assert [s.category for s in specs] == [
        Category.CASH,
        Category.DRUGS,
        Category.FIREARM,
        Category.DOCUMENT,
    ]
    assert specs[0].value == Money(Decimal("3000"), "EUR")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (RawItem(None, "x", seal="S"), "items[0].category"),
        (
            RawItem(Category.DRUGS, "x", seal="S", drugs=("c", "-3", "g")),
            "items[0].drugs.net_weight",
        ),
        (
            RawItem(Category.DRUGS, "x", seal="S", drugs=("c", "1e3", "g")),
            "items[0].drugs.net_weight",
        ),
        (
            RawItem(Category.DRUGS, "x", seal="S", drugs=("c", "NaN", "g")),
            "items[0].drugs.net_weight",
        ),
        (
            RawItem(Category.OTHER, "x", "12.5", "XYZ", seal="S"),
            "items[0].estimated_value.currency",
        ),
        (RawItem(Category.OTHER, "x", "-1", "EUR", seal="S"), "items[0].estimated_value.amount"),
        (RawItem(Category.OTHER, "x", "1.5e2", "EUR", seal="S"), "items[0].estimated_value.amount"),
        (
            RawItem(
                Category.CASH,
                "x",
                seal="S",
                cash_amount="10",
                cash_currency="EUR",
                counted_by=("alice", "alice"),
            ),
            "items[0].cash.counted_by",
        ),
        (RawItem(Category.OTHER, "x", seal=""), "items[0].seal"),
        (RawItem(Category.OTHER, "x", seal="S", drugs=("c", "1", "g")), "items[0].drugs"),
    ],
)
def test_bad_fields_are_named(raw: RawItem, field: str) -> None:
    with pytest.raises(InvalidArgument) as bad:
        check_seizure(seizure(), [raw], NOW)
    assert field in {v.field for v in bad.value.violations}


def test_a_seal_used_twice_in_one_seizure() -> None:
    raws = [RawItem(Category.OTHER, "a", seal="S"), RawItem(Category.OTHER, "b", seal="S")]
    with pytest.raises(InvalidArgument) as bad:
        check_seizure(seizure(), raws, NOW)
    assert [v.field for v in bad.value.violations] == ["items[1].seal"]


def events(n: int) -> list[chain.Link]:
    links: list[chain.Link] = []
    for i in range(1, n + 1):
        event = chain.Event(
            "items/i1",
            i,
            "MOVED",
            NOW + timedelta(seconds=i),
            "officer",
            {"location": f"locations/a.b.{i}", "note": "été"},
        )
        previous = chain.Head(i - 1, links[-1].hash) if links else None
        links.append(chain.append(previous, event))
    return links


def test_canonical_encoding_is_the_documented_json() -> None:
    link = events(1)[0]
    text = chain.canonical(link.event)
    assert json.loads(text) == {
        "actor": "officer",
        "data": {"location": "locations/a.b.1", "note": "été"},
        "item": "items/i1",
        "sequence": 1,
        "time": "2026-03-01T10:00:01.000000Z",
        "type": "MOVED",
    }
    assert b"\xc3\xa9" in text
    assert b" " not in text
    assert link.hash == hashlib.sha256(bytes(32) + text).hexdigest()


def head_of(links: list[chain.Link]) -> chain.Head:
    return chain.Head(len(links), links[-1].hash)


def test_an_intact_chain_verifies_against_its_anchor() -> None:
    links = events(5)
    check = chain.verify("items/i1", links, head_of(links), chain.Head(5, links[-1].hash))
    assert check.intact
    assert check.length == 5
    assert check.head == links[-1].hash


def test_edit_delete_reorder_and_truncate_are_found() -> None:
    links = events(5)
    recorded, anchor = head_of(links), chain.Head(5, links[-1].hash)
    edited = list(links)
    edited[2] = replace(links[2], event=replace(links[2].event, actor="mallory"))
    assert chain.verify("items/i1", edited, recorded, anchor).problem is chain.Problem.HASH_MISMATCH
    deleted = links[:2] + links[3:]
    assert chain.verify("items/i1", deleted, recorded, anchor).problem is chain.Problem.SEQUENCE_GAP
    swapped = [links[0], links[2], links[1], *links[3:]]
    assert chain.verify("items/i1", swapped, recorded, anchor).first_bad_sequence == 2
    # Truncated, and the item's own head rewritten to match: only the anchor tells.
    short = links[:3]
    check = chain.verify("items/i1", short, head_of(short), anchor)
    assert (check.problem, check.first_bad_sequence) == (chain.Problem.TRUNCATED, 4)


def test_appending_out_of_order_is_a_bug() -> None:
    links = events(2)
    with pytest.raises(ValueError, match="does not follow"):
        chain.append(chain.Head(2, links[-1].hash), replace(links[0].event, sequence=5))


def location(secure: bool, capacity: int = 0, **changes: object) -> Location:
    place = Location(
        "ant.r1.s1",
        "ANT-R1-S1",
        "Antwerpen",
        LocationKind.SHELF,
        "u",
        secure,
        capacity,
        NOW,
        "custody-supervisor-2101",
    )
    return replace(place, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("category", list(Category))
def test_strict_goods_rest_only_in_a_secure_location(category: Category) -> None:
    location(secure=True).admit(item(category))
    if category in (Category.CASH, Category.DRUGS, Category.FIREARM):
        with pytest.raises(FailedPrecondition) as refused:
            location(secure=False).admit(item(category))
        assert refused.value.reason == "LOCATION_NOT_SECURE"
    else:
        location(secure=False).admit(item(category))


def test_a_location_with_a_capacity_refuses_what_does_not_fit() -> None:
    location(secure=False).check_room(10_000, 1)  # 0: no limit
    location(secure=False, capacity=3).check_room(2, 1)
    with pytest.raises(FailedPrecondition) as refused:
        location(secure=False, capacity=3).check_room(2, 2)
    assert refused.value.reason == "LOCATION_FULL"


def test_a_new_locations_bad_fields_are_named() -> None:
    check_new_location(location(secure=True))
    with pytest.raises(InvalidArgument) as refused:
        check_new_location(
            location(secure=True, id="../x", barcode="", display_name=" ", unit="", capacity=-1)
        )
    assert {v.field for v in refused.value.violations} == {
        "location_id",
        "location.barcode",
        "location.display_name",
        "location.unit",
        "location.capacity",
    }
