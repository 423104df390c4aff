"""The vehicle register simulator: Annex I answers from the fixture register."""

from __future__ import annotations

from datetime import UTC, datetime

from justice.exchange.v1 import exchange_pb2
from justice.fines.service import MESSAGE_TYPE_LOOKUP, MESSAGE_TYPE_LOOKUP_REPLY
from justice.fines.v1 import fines_pb2 as pb
from justice.partner.client import Received
from justice.partner.register import VehicleRegisterSimulator
from justice.platform.timestamps import timestamp


def _received(request: pb.OwnerLookupRequest) -> Received:
    envelope = exchange_pb2.Envelope(
        id="e-1", type=MESSAGE_TYPE_LOOKUP, payload=request.SerializeToString()
    )
    return Received(msg=None, envelope=envelope)  # type: ignore[arg-type]


def _request(plate: str, country: str = "NL", *, timed: bool = True) -> pb.OwnerLookupRequest:
    request = pb.OwnerLookupRequest(
        lookup_id="l-1",
        plate=plate,
        registration_country=country,
        offence_country="BE",
        purpose="CBE",
    )
    if timed:
        request.reference_time.CopyFrom(timestamp(datetime(2026, 11, 1, tzinfo=UTC)))
    return request


async def test_a_request_without_a_time_is_refused() -> None:
    register = VehicleRegisterSimulator()
    answer = await register.handle(_received(_request("AB123C", timed=False)))
    assert not answer.accepted
    assert answer.reason == "REFERENCE_TIME_MISSING"
    assert register.refused == ["l-1"]


async def test_the_leasing_car_has_holder_owner_and_end_user_apart() -> None:
    register = VehicleRegisterSimulator()
    answer = await register.handle(_received(_request("LE999S")))
    assert answer.accepted
    [(kind, payload)] = answer.replies
    assert kind == MESSAGE_TYPE_LOOKUP_REPLY
    reply = pb.OwnerLookupReply.FromString(payload)
    assert reply.holder.kind == pb.LEGAL
    assert reply.holder.name == "Lease Holland B.V."
    assert reply.owner.name != reply.holder.name
    assert reply.end_user.kind == pb.NATURAL
    assert reply.vehicle.eu_category == "M1"


async def test_an_unknown_plate_is_not_found() -> None:
    reply = VehicleRegisterSimulator().lookup(_request("QQ999Q"))
    assert reply.not_found
    assert not reply.HasField("holder")
