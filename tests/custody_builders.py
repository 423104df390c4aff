"""Builders of custody requests, shared by the API, integration and end-to-end tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from justice.custody.v1 import custody_pb2 as pb
from justice.custody.v1 import custody_pb2_grpc as pb_grpc
from justice.type.money_pb2 import Money

PURPOSE = (("x-justice-purpose", "custody test"),)


def seal() -> str:
    return f"SEAL-{uuid.uuid4().hex[:12]}"


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def seizure(case_number: str = "AN.12.L1.000123/26") -> pb.Seizure:
    return pb.Seizure(
        case_number=case_number,
        report="PV AN.12.L1.000123/2026",
        place="Antwerpen, Meir 1",
        seize_time=stamp(datetime.now(UTC) - timedelta(hours=1)),
        seized_from=pb.Person(given_name="Jan", family_name="Peeters", language="nl"),
        legal_ground="Art. 35 Sv.",
    )


def drugs(weight: str = "103.5", value: str = "") -> pb.Item:
    item = pb.Item(
        category=pb.DRUGS,
        description="bag of cannabis",
        seal=seal(),
        drugs=pb.Drugs(substance="cannabis", net_weight=weight, unit="g"),
    )
    if value:
        item.estimated_value.CopyFrom(Money(amount=value, currency="EUR"))
    return item


def cash(amount: str = "3000.00") -> pb.Item:
    return pb.Item(
        category=pb.CASH,
        description="banknotes",
        seal=seal(),
        estimated_value=Money(amount=amount, currency="EUR"),
        cash=pb.Cash(
            amount=Money(amount=amount, currency="EUR"),
            counted_by=["officer-1001", "officer-1002"],
        ),
    )


def document() -> pb.Item:
    return pb.Item(category=pb.DOCUMENT, description="forged passport", seal=seal())


def register(*items: pb.Item) -> pb.RegisterSeizureRequest:
    return pb.RegisterSeizureRequest(seizure=seizure(), items=list(items))


def location(name: str = "a") -> str:
    return f"locations/antwerpen.r1.{name}"


def new_location(
    kind: pb.LocationKind.ValueType = pb.VAULT, *, secure: bool = True, capacity: int = 0
) -> pb.Location:
    return pb.Location(
        display_name="Antwerpen, room 1",
        kind=kind,
        unit="Seized Goods Antwerpen",
        secure=secure,
        capacity=capacity,
    )


async def ensure_location(stub: pb_grpc.CustodyServiceStub, name: str) -> None:
    """A secure location for tests that only need somewhere to store; made once per database."""
    request = pb.CreateLocationRequest(
        location_id=name.removeprefix("locations/"), location=new_location()
    )
    try:
        await stub.CreateLocation(request)
    except grpc.aio.AioRpcError as error:
        if error.code() is not grpc.StatusCode.ALREADY_EXISTS:
            raise
