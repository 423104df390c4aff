"""FineService over gRPC: bad input is INVALID_ARGUMENT naming the fields, reads of
personal data need a purpose, and the outcome codes of the state machine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import text_format

from justice.audit.v1 import audit_pb2 as apb
from justice.audit.v1 import audit_pb2_grpc
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


async def test_a_domestic_offence_is_priced_and_left_to_the_national_procedure(
    fines: fines_pb2_grpc.FineServiceStub,
) -> None:
    fine = await fines.RegisterOffence(pb.RegisterOffenceRequest(fine=_fine(), request_id="r-1"))
    # A Belgian plate on the Belgian platform: no cross-border lookup, no article 5 letter.
    assert fine.state == pb.DOMESTIC_PROCEDURE
    assert not fine.HasField("holder")
    assert fine.notices_sent == 0
    assert fine.plate == "1ABC123"
    assert fine.amount == pb.Money(amount="106.00", currency_code="EUR")
    assert fine.payment_reference.startswith("+++")
    again = await fines.RegisterOffence(pb.RegisterOffenceRequest(fine=_fine(), request_id="r-1"))
    assert again.name == fine.name
    got = await fines.GetFine(pb.GetFineRequest(name=fine.name), metadata=PURPOSE)
    assert got.payment_reference == fine.payment_reference
    listed = await fines.ListFines(
        pb.ListFinesRequest(filter='plate = "1ABC123" AND state = DOMESTIC_PROCEDURE'),
        metadata=PURPOSE,
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
    details = rich_error(error.value)
    assert details.reason == "ILLEGAL_TRANSITION"
    assert details.metadata == {"from": "DOMESTIC_PROCEDURE", "to": "CONTESTED"}
    assert error.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as letter:
        await fines.IssueNotice(pb.IssueNoticeRequest(name=fine.name))
    assert letter.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert rich_error(letter.value).metadata == {"state": "DOMESTIC_PROCEDURE"}
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await fines.GetFine(pb.GetFineRequest(name="fines/nope"), metadata=PURPOSE)
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    stats = await fines.GetFineStatistics(pb.GetFineStatisticsRequest())
    assert sum(c.count for c in stats.by_state) >= 2


async def test_the_audit_trail_holds_fine_names_and_purposes_never_plates_or_names(
    fines: fines_pb2_grpc.FineServiceStub, auditor: audit_pb2_grpc.AuditServiceStub
) -> None:
    """What erasure leaves of a fine in the audit trail: its pseudonymous name. Plates,
    holders, drivers and grounds travel in requests, never into the records."""
    plate, driver, grounds = "ZZ987Q", "Zofia Wiśniewska", "Zofia Wiśniewska was driving"
    fine = await fines.RegisterOffence(pb.RegisterOffenceRequest(fine=_fine(plate=plate)))
    await fines.GetFine(pb.GetFineRequest(name=fine.name), metadata=PURPOSE)
    await fines.ListFines(pb.ListFinesRequest(filter=f'plate = "{plate}"'), metadata=PURPOSE)
    person = pb.Person(
        kind=pb.NATURAL,
        name=driver,
        address=pb.Address(street="ul. Długa 5", postal_code="00-238", city="Warszawa"),
    )
    for call in (
        fines.DesignateDriver(pb.DesignateDriverRequest(name=fine.name, driver=person)),
        fines.ContestFine(pb.ContestFineRequest(name=fine.name, grounds=grounds)),
    ):
        with pytest.raises(grpc.aio.AioRpcError):
            await call  # refused (a domestic fine), and audited all the same
    records = (
        await auditor.QueryAccess(
            apb.QueryAccessRequest(principal="fines-officer-3001", page_size=500),
            metadata=(("x-justice-purpose", "privacy review"),),
        )
    ).records
    about = [r for r in records if fine.name in r.resources]
    assert {r.method for r in about} >= {"GetFine", "DesignateDriver", "ContestFine"}
    assert {r.purpose for r in about if r.method == "GetFine"} == {PURPOSE[0][1]}
    text = "\n".join(text_format.MessageToString(r, as_utf8=True) for r in records)
    for secret in (plate, "Zofia", "Wiśniewska", "Długa", "Warszawa"):
        assert secret not in text, secret
