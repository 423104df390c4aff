"""FineService over gRPC: bad input is INVALID_ARGUMENT naming the fields, reads of
personal data need a purpose, and the outcome codes of the state machine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from justice.fines.v1 import fines_pb2 as pb
from justice.fines.v1 import fines_pb2_grpc
from justice.platform.timestamps import timestamp
from tests.api.conftest import ChannelFactory
from tests.api.rich_status import rich_error

PURPOSE = (("x-justice-purpose", "fine API tests"),)


@pytest.fixture(scope="module")
async def fines(
    grpc_create_channel: ChannelFactory,
) -> AsyncIterator[fines_pb2_grpc.FineServiceStub]:
    channel = grpc_create_channel(principal="fines-officer-3001")
    yield fines_pb2_grpc.FineServiceStub(channel)
    await channel.close()


def _fine(**changes: object) -> pb.Fine:
    fine = pb.Fine(
        detection_source=pb.FIXED_CAMERA,
        device_id="CAM-1",
        offence_time=timestamp(datetime.now(UTC) - timedelta(hours=1)),
        place="E40 km 3",
        offence_country="BE",
        plate="1-ABC-123",
        registration_country="BE",
        vehicle_category="M1",
        offence=pb.SPEEDING,
        provision="art. 11.1 WVR",
        speed=pb.Speed(measured=140, corrected=133, allowed=120),
    )
    for key, value in changes.items():
        if isinstance(value, pb.Speed):
            getattr(fine, key).CopyFrom(value)
        else:
            setattr(fine, key, value)
    return fine


async def test_a_domestic_offence_is_priced_from_the_tariff(
    fines: fines_pb2_grpc.FineServiceStub,
) -> None:
    fine = await fines.RegisterOffence(pb.RegisterOffenceRequest(fine=_fine(), request_id="r-1"))
    assert fine.state == pb.REGISTERED  # a domestic plate: no foreign lookup
    assert fine.plate == "1ABC123"
    assert fine.amount == pb.Money(amount="106.00", currency_code="EUR")
    assert fine.payment_reference.startswith("+++")
    again = await fines.RegisterOffence(pb.RegisterOffenceRequest(fine=_fine(), request_id="r-1"))
    assert again.name == fine.name
    got = await fines.GetFine(pb.GetFineRequest(name=fine.name), metadata=PURPOSE)
    assert got.payment_reference == fine.payment_reference
    listed = await fines.ListFines(
        pb.ListFinesRequest(filter='plate = "1ABC123" AND state = REGISTERED'), metadata=PURPOSE
    )
    assert [f.name for f in listed.fines] == [fine.name]


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"registration_country": "XX"}, {"fine.registration_country"}),
        ({"plate": ""}, {"fine.plate"}),
        ({"offence": pb.OFFENCE_UNSPECIFIED}, {"fine.offence"}),
        ({"offence": 99}, {"fine.offence"}),
        ({"speed": pb.Speed(measured=118, corrected=115, allowed=120)}, {"fine.speed.corrected"}),
        ({"offence_country": "", "plate": " "}, {"fine.offence_country", "fine.plate"}),
    ],
)
async def test_bad_offences_are_invalid_argument_with_field_violations(
    fines: fines_pb2_grpc.FineServiceStub, changes: dict[str, object], fields: set[str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await fines.RegisterOffence(pb.RegisterOffenceRequest(fine=_fine(**changes)))
    details = rich_error(error.value)
    assert details.code is grpc.StatusCode.INVALID_ARGUMENT
    assert set(details.fields) == fields


@pytest.mark.parametrize(
    ("amount", "reference", "fields"),
    [
        ("-5.00", "+++123/4567/89002+++", {"amount.amount"}),
        ("5.00", "+++123/4567/89003+++", {"payment_reference"}),
        ("abc", "+++123/4567/89002+++", {"amount.amount"}),
    ],
)
async def test_bad_payments_are_invalid_argument(
    fines: fines_pb2_grpc.FineServiceStub, amount: str, reference: str, fields: set[str]
) -> None:
    request = pb.RegisterPaymentRequest(
        payment_id="p-bad",
        payment_reference=reference,
        amount=pb.Money(amount=amount, currency_code="EUR"),
        paid_time=timestamp(datetime.now(UTC)),
    )
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await fines.RegisterPayment(request)
    details = rich_error(error.value)
    assert details.code is grpc.StatusCode.INVALID_ARGUMENT
    assert set(details.fields) == fields


async def test_unknown_reference_is_kept_unmatched(fines: fines_pb2_grpc.FineServiceStub) -> None:
    request = pb.RegisterPaymentRequest(
        payment_id="p-unknown",
        payment_reference="+++123/4567/89002+++",
        amount=pb.Money(amount="50.00", currency_code="EUR"),
        paid_time=timestamp(datetime.now(UTC)),
    )
    answer = await fines.RegisterPayment(request)
    assert answer.outcome == pb.UNMATCHED
    assert answer.fine == ""
    assert (await fines.RegisterPayment(request)).outcome == pb.UNMATCHED


async def test_reading_a_fine_needs_a_purpose_and_the_fines_role(
    fines: fines_pb2_grpc.FineServiceStub, grpc_create_channel: ChannelFactory
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await fines.ListFines(pb.ListFinesRequest())
    assert error.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    channel = grpc_create_channel(principal="officer-1001")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await fines_pb2_grpc.FineServiceStub(channel).ListFines(
                pb.ListFinesRequest(), metadata=PURPOSE
            )
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    finally:
        await channel.close()


async def test_wrong_state_is_failed_precondition(fines: fines_pb2_grpc.FineServiceStub) -> None:
    fine = await fines.RegisterOffence(pb.RegisterOffenceRequest(fine=_fine()))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await fines.ContestFine(pb.ContestFineRequest(name=fine.name, grounds="not me"))
    assert rich_error(error.value).reason == "ILLEGAL_TRANSITION"
    assert error.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await fines.GetFine(pb.GetFineRequest(name="fines/nope"), metadata=PURPOSE)
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    stats = await fines.GetFineStatistics(pb.GetFineStatisticsRequest())
    assert sum(c.count for c in stats.by_state) >= 2
