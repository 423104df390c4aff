"""Custody use cases on an in-memory unit of work (tests/fakes/custody.py): every change
appends to the item's hash chain and queues its anchor in the same transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from justice.custody.ledger import MESSAGE_TYPE_EVENT, CustodyConfig, Ports, Scope
from justice.custody.model import (
    Category,
    ItemState,
    Location,
    LocationKind,
    Person,
    RawItem,
    Seizure,
    Tolerance,
)
from justice.custody.movements import MovementService
from justice.custody.service import CustodyService
from justice.platform.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from justice.security.approvals import FourEyes
from tests.fakes.custody import (
    CustodyTables,
    CustodyUnit,
    InMemoryItemListing,
    NoAnchors,
    RecordingAlerts,
    RecordingSigner,
    RecordingVerifier,
)
from tests.fakes.unit_of_work import Tables

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OFFICER = "officer-1001"
SEIZURE = Seizure(
    id="",
    case_number="AN.12.L1.000123/26",
    report="PV AN.12.L1.000123/2026",
    place="Antwerpen, Meir 1",
    seize_time=NOW - timedelta(hours=1),
    seizing_officer=OFFICER,
    seized_from=Person("Jan", "Peeters", language="nl"),
    owner=None,
    legal_ground="Art. 35 Sv.",
    goods_waived=False,
    create_time=NOW,
)


OWN = Scope(OFFICER, in_custody_only=True)


def drugs(seal: str) -> RawItem:
    return RawItem(Category.DRUGS, "bag of cannabis", seal=seal, drugs=("cannabis", "103.5", "g"))


def _ports(tables: Tables[CustodyTables], annotated: list[str]) -> Ports:
    signer = RecordingSigner()
    return Ports(
        uow=lambda: CustodyUnit(tables),
        reads=lambda: CustodyUnit(tables),
        four_eyes=FourEyes(clock=lambda: NOW, ttl=timedelta(days=1)),
        listing=InMemoryItemListing(tables),
        signer=signer,
        verifier=RecordingVerifier(signer),
        pdf_signer=RecordingSigner(),
        anchors=NoAnchors(),
        alerts=RecordingAlerts(),
        annotate=annotated.append,
        clock=lambda: NOW,
        config=CustodyConfig(
            tolerance=Tolerance(),
            notice_threshold=Decimal(10_000),
            central_agency="coiv",
            events_partner="custody-ledger",
            prosecutor="prosecutor-antwerp",
            signer_id="justice-server",
        ),
    )


async def test_a_seizure_starts_each_item_chain_and_queues_its_anchor_once() -> None:
    tables: Tables[CustodyTables] = Tables(CustodyTables())
    annotated: list[str] = []
    service = CustodyService(_ports(tables, annotated))
    seizure, [item] = await service.register_seizure(SEIZURE, [drugs("SEAL-1")], "req-1")
    assert item.state is ItemState.SEIZED
    assert item.custodian == OFFICER
    [link] = tables.state.events[item.name]
    assert (link.event.sequence, link.event.type, link.hash) == (1, "SEIZED", item.chain_head)
    [message] = [m for m in tables.state.outbox if m.message_type == MESSAGE_TYPE_EVENT]
    assert item.chain_head in message.subject_ref
    assert annotated == [f"{item.name}@1:{item.chain_head}"]
    # The same request again: the same seizure, nothing new written.
    commits = tables.commits
    again, [same] = await service.register_seizure(SEIZURE, [drugs("SEAL-1")], "req-1")
    assert (again.id, same.id) == (seizure.id, item.id)
    assert tables.commits == commits


async def test_a_seal_on_an_item_not_yet_disposed_is_refused_and_nothing_written() -> None:
    tables: Tables[CustodyTables] = Tables(CustodyTables())
    service = CustodyService(_ports(tables, []))
    await service.register_seizure(SEIZURE, [drugs("SEAL-2")], "req-a")
    before = (dict(tables.state.items), tables.commits)
    with pytest.raises(AlreadyExists) as refused:
        await service.register_seizure(SEIZURE, [drugs("SEAL-2")], "req-b")
    assert refused.value.reason == "SEAL_IN_USE"
    assert (tables.state.items, tables.commits) == before


async def test_only_the_custodian_transfers_and_the_chain_grows_by_one() -> None:
    tables: Tables[CustodyTables] = Tables(CustodyTables())
    ports = _ports(tables, [])
    _, [item] = await CustodyService(ports).register_seizure(SEIZURE, [drugs("SEAL-3")], "r")
    movements = MovementService(ports)
    with pytest.raises(PermissionDenied):
        await movements.transfer(
            item.name, "custodian-2001", "", "", Scope("officer-9", in_custody_only=True)
        )
    moved = await movements.transfer(
        item.name, "custodian-2001", "", "to the depot", Scope(OFFICER, in_custody_only=True)
    )
    assert moved.pending_receiver == "custodian-2001"
    assert [link.event.type for link in tables.state.events[item.name]] == [
        "SEIZED",
        "TRANSFERRED",
    ]
    assert tables.state.events[item.name][1].previous_hash == item.chain_head
    with pytest.raises(FailedPrecondition):
        # Already on its way: a second transfer must wait for the receiver's answer.
        await movements.transfer(item.name, "custodian-2002", "", "", Scope(OFFICER))


async def test_a_transfer_names_one_of_our_locations_that_may_hold_the_item() -> None:
    tables: Tables[CustodyTables] = Tables(CustodyTables())
    for location_id, secure in (("depot.shelf", False), ("depot.vault", True)):
        tables.state.locations[location_id] = Location(
            location_id, location_id, location_id, LocationKind.OTHER, "depot", secure, 0, NOW, "x"
        )
    ports = _ports(tables, [])
    _, [item] = await CustodyService(ports).register_seizure(SEIZURE, [drugs("SEAL-4")], "r")
    movements = MovementService(ports)
    with pytest.raises(NotFound) as unknown:
        await movements.transfer(item.name, "custodian-2001", "locations/elsewhere", "", OWN)
    assert unknown.value.reason == "LOCATION_NOT_FOUND"
    with pytest.raises(FailedPrecondition) as unfit:
        await movements.transfer(item.name, "custodian-2001", "locations/depot.shelf", "", OWN)
    assert unfit.value.reason == "LOCATION_NOT_SECURE"
    assert [link.event.type for link in tables.state.events[item.name]] == ["SEIZED"]
    await movements.transfer(item.name, "custodian-2001", "locations/depot.vault", "", OWN)
    assert tables.state.events[item.name][-1].event.data["location"] == "locations/depot.vault"
