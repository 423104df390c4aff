"""CustodyService servicer: proto in, domain call, proto out. No SQL, no rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import grpc
from google.type import date_pb2

from justice.custody.disposition import DispositionService
from justice.custody.integrity import IntegrityService
from justice.custody.inventory import InventoryService
from justice.custody.ledger import ItemQuery, Scope
from justice.custody.locations import LocationService
from justice.custody.model import (
    Cash,
    Category,
    Decision,
    DecisionKind,
    Disposal,
    Drugs,
    Electronics,
    Firearm,
    Inventory,
    Item,
    ItemState,
    Location,
    LocationKind,
    Money,
    Outcome,
    Person,
    Quantity,
    RawDenomination,
    RawItem,
    Seizure,
    Vehicle,
    decimal_of,
    money_of,
)
from justice.custody.movements import MovementService
from justice.custody.service import CustodyService
from justice.custody.v1 import custody_pb2 as pb
from justice.custody.v1 import custody_pb2_grpc
from justice.platform.errors import FieldViolation, InvalidArgument
from justice.platform.listing import next_token, page, parse_filter
from justice.platform.timestamps import moment, timestamp
from justice.security.approvals import ApprovalRequest
from justice.security.identity import current_principal
from justice.security.rules import Condition, current_access
from justice.type import money_pb2

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True)
class Custody:
    """The custody services, one per capability, as the servicer and inbound see them."""

    seizures: CustodyService
    movements: MovementService
    dispositions: DispositionService
    inventories: InventoryService
    integrity: IntegrityService
    locations: LocationService


def _money_pb(value: Money | None) -> money_pb2.Money | None:
    return money_pb2.Money(amount=str(value.amount), currency=value.currency) if value else None


def _enum(kind: Any, value: int, enum: Any, field: str) -> Any:
    """A proto enum value as the domain enum; None for UNSPECIFIED; a violation if unknown."""
    if value == 0:
        return None
    try:
        return enum(kind.Name(value))
    except ValueError:
        raise InvalidArgument.of([FieldViolation(field, "not a known value")]) from None


def raw_item(message: pb.Item, where: str) -> RawItem:
    which = message.WhichOneof("details")
    cash, drugs = message.cash, message.drugs
    return RawItem(
        category=_enum(pb.Category, message.category, Category, f"{where}.category"),
        description=message.description,
        value_amount=message.estimated_value.amount,
        value_currency=message.estimated_value.currency,
        photos=tuple(message.photos),
        seal=message.seal,
        count=message.count or 1,
        vehicle=Vehicle(message.vehicle.plate, message.vehicle.vin) if which == "vehicle" else None,
        cash_amount=cash.amount.amount if which == "cash" else "",
        cash_currency=cash.amount.currency if which == "cash" else "",
        denominations=tuple(RawDenomination(d.value, d.count) for d in cash.denominations),
        counted_by=tuple(cash.counted_by) if which == "cash" else (),
        drugs=(drugs.substance, drugs.net_weight, drugs.unit) if which == "drugs" else None,
        firearm=Firearm(
            message.firearm.make,
            message.firearm.model,
            message.firearm.calibre,
            message.firearm.serial,
        )
        if which == "firearm"
        else None,
        electronics=Electronics(
            message.electronics.imei,
            message.electronics.serial,
            tuple(message.electronics.forensic_images),
        )
        if which == "electronics"
        else None,
    )


# Domain enum -> proto number, looked up once: Enum.value and EnumTypeWrapper.Value are
# Python calls, four per item on a listed page.
_CATEGORY_PB = {c: pb.Category.Value(c.value) for c in Category}
_STATE_PB = {s: pb.ItemState.Value(s.value) for s in ItemState}
_DECISION_PB = {d: pb.DecisionKind.Value(d.value) for d in DecisionKind}
_OUTCOME_PB = {o: pb.Outcome.Value(o.value) for o in Outcome}


def item_to_proto(item: Item) -> pb.Item:
    spec = item.spec
    decision = item.decision
    message = pb.Item(
        name=item.name,
        seizure=f"seizures/{item.seizure_id}",
        case_number=item.case_number,
        category=_CATEGORY_PB[spec.category],
        description=spec.description,
        estimated_value=_money_pb(spec.value),
        photos=list(spec.photos),
        seal=spec.seal,
        count=spec.count,
        state=_STATE_PB[item.state],
        on_hold=item.on_hold,
        custodian=item.custodian,
        location=item.location,
        pending_receiver=item.pending_receiver,
        parent=f"items/{item.parent_id}" if item.parent_id else "",
        decision=_DECISION_PB[decision.kind] if decision else pb.DECISION_KIND_UNSPECIFIED,
        decision_reference=decision.reference if decision else "",
        outcome=_OUTCOME_PB[item.outcome] if item.outcome else pb.OUTCOME_UNSPECIFIED,
        due_time=timestamp(item.due_time),
        chain_length=item.chain_length,
        chain_head=item.chain_head,
        create_time=timestamp(item.create_time),
        update_time=timestamp(item.update_time),
    )
    details = spec.details
    if isinstance(details, Vehicle):
        message.vehicle.CopyFrom(pb.Vehicle(plate=details.plate, vin=details.vin))
    elif isinstance(details, Cash):
        message.cash.CopyFrom(
            pb.Cash(
                amount=_money_pb(details.amount),
                denominations=[
                    pb.Denomination(value=str(v), count=n) for v, n in details.denominations
                ],
                counted_by=list(details.counted_by),
            )
        )
    elif isinstance(details, Drugs):
        message.drugs.CopyFrom(
            pb.Drugs(
                substance=details.substance, net_weight=str(details.net_weight), unit=details.unit
            )
        )
    elif isinstance(details, Firearm):
        message.firearm.CopyFrom(
            pb.Firearm(
                make=details.make,
                model=details.model,
                calibre=details.calibre,
                serial=details.serial,
            )
        )
    elif isinstance(details, Electronics):
        message.electronics.CopyFrom(
            pb.Electronics(
                imei=details.imei,
                serial=details.serial,
                forensic_images=list(details.forensic_images),
            )
        )
    return message


def _person(message: pb.Person, present: bool) -> Person | None:
    if not present:
        return None
    return Person(message.given_name, message.family_name, message.national_id, message.language)


def _person_pb(person: Person | None) -> pb.Person | None:
    if person is None:
        return None
    return pb.Person(
        given_name=person.given_name,
        family_name=person.family_name,
        national_id=person.national_id,
        language=person.language,
    )


def seizure_from_proto(message: pb.Seizure, officer: str, now: datetime) -> Seizure:
    return Seizure(
        id="",
        case_number=message.case_number,
        report=message.report,
        place=message.place,
        seize_time=moment(message, "seize_time", "seizure.seize_time") or now,
        seizing_officer=officer,
        seized_from=_person(message.seized_from, message.HasField("seized_from")),
        owner=_person(message.owner, message.HasField("owner")),
        legal_ground=message.legal_ground,
        goods_waived=message.goods_waived,
        create_time=now,
    )


def seizure_to_proto(seizure: Seizure, personal: bool) -> pb.Seizure:
    return pb.Seizure(
        name=seizure.name,
        case_number=seizure.case_number,
        report=seizure.report,
        place=seizure.place,
        seize_time=timestamp(seizure.seize_time),
        seizing_officer=seizure.seizing_officer,
        seized_from=_person_pb(seizure.seized_from) if personal else None,
        owner=_person_pb(seizure.owner) if personal else None,
        legal_ground=seizure.legal_ground,
        goods_waived=seizure.goods_waived,
        items=list(seizure.items),
    )


def quantity(message: pb.Quantity, field: str) -> Quantity:
    v: list[FieldViolation] = []
    weight = decimal_of(f"{field}.weight", message.weight, v, required=False)
    amount = None
    if message.HasField("amount"):
        amount = money_of(f"{field}.amount", message.amount.amount, message.amount.currency, v)
    if message.count < 0:
        v.append(FieldViolation(f"{field}.count", "not negative"))
    if v:
        raise InvalidArgument.of(v)
    return Quantity(message.count or None, weight, amount)


def disposal(message: pb.Disposal) -> Disposal:
    proceeds = None
    if message.HasField("proceeds"):
        v: list[FieldViolation] = []
        proceeds = money_of(
            "disposal.proceeds", message.proceeds.amount, message.proceeds.currency, v
        )
        if v:
            raise InvalidArgument.of(v)
    return Disposal(message.witness, message.method, message.licence_reference, proceeds)


def _date(value: date_pb2.Date, field: str) -> str:
    try:
        return date(value.year, value.month, value.day).isoformat()
    except ValueError:
        raise InvalidArgument.of([FieldViolation(field, "a valid calendar date")]) from None


def decision(kind: int, reference: str, when: date_pb2.Date, authority: str) -> Decision:
    found = _enum(pb.DecisionKind, kind, DecisionKind, "decision")
    if found is None:
        raise InvalidArgument.of([FieldViolation("decision", "required")])
    return Decision(found, reference, _date(when, "decision_date"), authority)


def approval_to_proto(approval: ApprovalRequest, now: datetime) -> pb.DisposalApproval:
    return pb.DisposalApproval(
        name=approval.name,
        item=approval.resource,
        state=approval.state_at(now).value,
        requested_by=approval.requested_by,
        decided_by=approval.decided_by,
        expire_time=timestamp(approval.expire_time),
    )


def inventory_to_proto(inventory: Inventory) -> pb.Inventory:
    return pb.Inventory(
        name=inventory.name,
        location=inventory.location,
        state=inventory.state,
        started_by=inventory.started_by,
        submitted_by=inventory.submitted_by,
        expected_seals=[seal for _, seal in inventory.expected],
        found_seals=list(inventory.found),
        missing_items=list(inventory.missing),
        unexpected_seals=list(inventory.unexpected),
        report_sha256=inventory.report_sha256,
        signed_report=inventory.signed_report,
    )


# The proto's OTHER belongs to Category (one enum namespace per package).
_KIND_PB = {kind: kind.value for kind in LocationKind} | {LocationKind.OTHER: "OTHER_LOCATION"}
_KIND_OF = {value: kind for kind, value in _KIND_PB.items()}


def location_from_proto(location_id: str, message: pb.Location) -> Location:
    if message.kind == pb.LOCATION_KIND_UNSPECIFIED or message.kind not in (
        pb.LocationKind.values()
    ):
        raise InvalidArgument.of([FieldViolation("location.kind", "one of the known kinds")])
    return Location(
        id=location_id,
        barcode=message.barcode,
        display_name=message.display_name,
        kind=_KIND_OF[pb.LocationKind.Name(message.kind)],
        unit=message.unit,
        secure=message.secure,
        capacity=message.capacity,
        create_time=datetime.min,
        created_by="",
    )


def location_to_proto(location: Location) -> pb.Location:
    return pb.Location(
        name=location.name,
        barcode=location.barcode,
        display_name=location.display_name,
        kind=pb.LocationKind.Value(_KIND_PB[location.kind]),
        unit=location.unit,
        secure=location.secure,
        capacity=location.capacity,
        create_time=timestamp(location.create_time),
        created_by=location.created_by,
    )


def _upper(enum: Any) -> Callable[[str], Any]:
    return lambda value: enum(value.upper())


_FILTER_FIELDS: dict[str, Callable[[str], object]] = {
    "case_number": str,
    "state": _upper(ItemState),
    "category": _upper(Category),
    "location": str,
    "custodian": str,
    "seal": str,
}


def scope() -> Scope:
    """The caller, and whether IN_CUSTODY restricts them to the items they hold."""
    access = current_access()
    restricted = access.conditions is not None and Condition.IN_CUSTODY in access.conditions
    return Scope(access.principal.id, in_custody_only=restricted)


class CustodyApi(custody_pb2_grpc.CustodyServiceServicer):
    def __init__(self, custody: Custody, clock: Callable[[], datetime]) -> None:
        self._c = custody
        self._clock = clock

    async def RegisterSeizure(
        self, request: pb.RegisterSeizureRequest, context: Context
    ) -> pb.RegisterSeizureResponse:
        officer = current_principal().id
        seizure = seizure_from_proto(request.seizure, officer, self._clock())
        raws = [raw_item(item, f"items[{i}]") for i, item in enumerate(request.items)]
        seizure, items = await self._c.seizures.register_seizure(seizure, raws, request.request_id)
        return pb.RegisterSeizureResponse(
            seizure=seizure_to_proto(seizure, personal=False),
            items=[item_to_proto(i) for i in items],
        )

    async def GetSeizure(self, request: pb.GetSeizureRequest, context: Context) -> pb.Seizure:
        access = current_access()
        author_only = access.conditions is not None and Condition.AUTHOR in access.conditions
        seizure = await self._c.seizures.get_seizure(request.name, scope(), author_only)
        return seizure_to_proto(seizure, personal=True)

    async def GetSeizureReceipt(
        self, request: pb.GetSeizureReceiptRequest, context: Context
    ) -> pb.SeizureReceipt:
        access = current_access()
        author_only = access.conditions is not None and Condition.AUTHOR in access.conditions
        found = await self._c.seizures.receipt(request.name, scope(), author_only)
        stem = "receipt-" + request.name.removeprefix("seizures/") + f"-{found.language}"
        return pb.SeizureReceipt(
            language=found.language,
            pdf=found.pdf,
            signed_xml=found.signed_xml,
            pdf_filename=f"{stem}.pdf",
            xml_filename=f"{stem}.xml",
        )

    async def GetItem(self, request: pb.GetItemRequest, context: Context) -> pb.Item:
        return item_to_proto(await self._c.seizures.get(request.name, scope()))

    async def ListItems(
        self, request: pb.ListItemsRequest, context: Context
    ) -> pb.ListItemsResponse:
        terms = parse_filter(request.filter, _FILTER_FIELDS)
        query = ItemQuery(page=page(request.page_size, request.page_token), **terms)
        items = await self._c.seizures.list(query, scope())
        last = items[-1].id if len(items) == query.page.size else None
        return pb.ListItemsResponse(
            items=[item_to_proto(i) for i in items], next_page_token=next_token(last)
        )

    async def TransferCustody(
        self, request: pb.TransferCustodyRequest, context: Context
    ) -> pb.Item:
        item = await self._c.movements.transfer(
            request.name, request.receiver, request.location, request.note, scope()
        )
        return item_to_proto(item)

    async def AcceptCustody(self, request: pb.AcceptCustodyRequest, context: Context) -> pb.Item:
        item = await self._c.movements.accept(
            request.name,
            request.seal_intact,
            quantity(request.found, "found"),
            request.location,
            scope(),
        )
        return item_to_proto(item)

    async def RejectCustody(self, request: pb.RejectCustodyRequest, context: Context) -> pb.Item:
        return item_to_proto(await self._c.movements.reject(request.name, request.reason, scope()))

    async def CheckOut(self, request: pb.CheckOutRequest, context: Context) -> pb.Item:
        item = await self._c.movements.check_out(
            request.name,
            request.destination,
            moment(request, "due_time"),
            request.purpose,
            scope(),
        )
        return item_to_proto(item)

    async def CheckIn(self, request: pb.CheckInRequest, context: Context) -> pb.Item:
        item = await self._c.movements.check_in(
            request.name, request.seal_intact, request.location, scope()
        )
        return item_to_proto(item)

    async def MoveItems(
        self, request: pb.MoveItemsRequest, context: Context
    ) -> pb.MoveItemsResponse:
        items = await self._c.movements.move(
            list(request.names), request.location, scope(), barcode=request.location_barcode
        )
        return pb.MoveItemsResponse(items=[item_to_proto(i) for i in items])

    async def CreateLocation(
        self, request: pb.CreateLocationRequest, context: Context
    ) -> pb.Location:
        location = location_from_proto(request.location_id, request.location)
        created = await self._c.locations.create(location, current_principal().id)
        return location_to_proto(created)

    async def GetLocation(self, request: pb.GetLocationRequest, context: Context) -> pb.Location:
        return location_to_proto(await self._c.locations.get(request.name, request.barcode))

    async def ListLocations(
        self, request: pb.ListLocationsRequest, context: Context
    ) -> pb.ListLocationsResponse:
        query = page(request.page_size, request.page_token)
        found = await self._c.locations.list(query)
        last = found[-1].id if len(found) == query.size else None
        return pb.ListLocationsResponse(
            locations=[location_to_proto(x) for x in found], next_page_token=next_token(last)
        )

    async def GetAcceptance(
        self, request: pb.GetAcceptanceRequest, context: Context
    ) -> pb.Acceptance:
        found = await self._c.integrity.acceptance(request.name, request.sequence, scope())
        return pb.Acceptance(
            item=found.item,
            sequence=found.sequence,
            receiver=found.receiver,
            signed_xml=found.signed_xml,
            sha256=found.sha256,
        )

    async def SplitItem(
        self, request: pb.SplitItemRequest, context: Context
    ) -> pb.SplitItemResponse:
        parent, sample = await self._c.movements.split(
            request.name,
            request.sample_seal,
            request.parent_new_seal,
            request.description,
            quantity(request.sample, "sample"),
            scope(),
        )
        return pb.SplitItemResponse(parent=item_to_proto(parent), sample=item_to_proto(sample))

    async def RequestDecision(
        self, request: pb.RequestDecisionRequest, context: Context
    ) -> pb.Item:
        return item_to_proto(await self._c.dispositions.request_decision(request.name, scope()))

    async def RecordDecision(self, request: pb.RecordDecisionRequest, context: Context) -> pb.Item:
        found = decision(
            request.decision, request.reference, request.decision_date, request.authority
        )
        item = await self._c.dispositions.record_decision(
            current_principal().id, request.name, found
        )
        return item_to_proto(item)

    async def PlaceHold(self, request: pb.PlaceHoldRequest, context: Context) -> pb.Item:
        return item_to_proto(
            await self._c.dispositions.place_hold(request.name, request.reference, scope())
        )

    async def ReleaseHold(self, request: pb.ReleaseHoldRequest, context: Context) -> pb.Item:
        return item_to_proto(
            await self._c.dispositions.release_hold(request.name, request.reference, scope())
        )

    async def RequestDisposal(
        self, request: pb.RequestDisposalRequest, context: Context
    ) -> pb.DisposalApproval:
        approval = await self._c.dispositions.request_disposal(
            request.name,
            disposal(request.disposal),
            current_principal(),
            request.request_id,
            scope(),
        )
        return approval_to_proto(approval, self._clock())

    async def ApproveDisposal(
        self, request: pb.ApproveDisposalRequest, context: Context
    ) -> pb.DisposalApproval:
        approval = await self._c.dispositions.approve_disposal(
            request.approval, current_principal()
        )
        return approval_to_proto(approval, self._clock())

    async def Dispose(self, request: pb.DisposeRequest, context: Context) -> pb.Item:
        item = await self._c.dispositions.dispose(
            request.name, disposal(request.disposal), request.approval, scope()
        )
        return item_to_proto(item)

    async def StartInventory(
        self, request: pb.StartInventoryRequest, context: Context
    ) -> pb.Inventory:
        inventory = await self._c.inventories.start_inventory(
            request.location, current_principal().id
        )
        return inventory_to_proto(inventory)

    async def SubmitInventory(
        self, request: pb.SubmitInventoryRequest, context: Context
    ) -> pb.Inventory:
        inventory = await self._c.inventories.submit_inventory(
            request.name, list(request.found_seals), current_principal().id
        )
        return inventory_to_proto(inventory)

    async def GetCustodyChain(
        self, request: pb.GetCustodyChainRequest, context: Context
    ) -> pb.CustodyChain:
        item, links = await self._c.integrity.custody_chain(request.name, scope())
        return pb.CustodyChain(
            item=item.name,
            head=item.chain_head,
            events=[
                pb.CustodyEvent(
                    sequence=link.event.sequence,
                    event_type=link.event.type,
                    event_time=timestamp(link.event.time),
                    actor=link.event.actor,
                    data=dict(link.event.data),
                    previous_hash=link.previous_hash,
                    hash=link.hash,
                )
                for link in links
            ],
        )

    async def VerifyCustodyChain(
        self, request: pb.VerifyCustodyChainRequest, context: Context
    ) -> pb.VerifyCustodyChainResponse:
        check = await self._c.integrity.verify(request.name, scope())
        return pb.VerifyCustodyChainResponse(
            intact=check.intact,
            problem=check.problem.value if check.problem else "",
            first_bad_sequence=check.first_bad_sequence,
            length=check.length,
            head=check.head,
            anchored_head=check.anchored.hash if check.anchored else "",
            anchored_sequence=check.anchored.sequence if check.anchored else 0,
        )

    async def ExportCustodyCertificate(
        self, request: pb.ExportCustodyCertificateRequest, context: Context
    ) -> pb.ExportCustodyCertificateResponse:
        item, signed = await self._c.integrity.certificate(request.name, scope())
        return pb.ExportCustodyCertificateResponse(
            signed_xml=signed, filename=f"custody-{item.id}.xml", head=item.chain_head
        )
