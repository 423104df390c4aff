"""ExchangeService over gRPC: the partner registry, deliveries scoped per partner, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from justice.devstack.pki import DevPki
from justice.exchange.v1 import exchange_pb2 as pb
from justice.exchange.v1 import exchange_pb2_grpc
from justice.reports.v1 import reports_pb2, reports_pb2_grpc
from tests.api.conftest import ChannelFactory
from tests.api.rich_status import rich_error
from tests.builders import create, overridden

Stub = exchange_pb2_grpc.ExchangeServiceStub


async def _stub(factory: ChannelFactory, principal: str) -> AsyncIterator[Stub]:
    channel = factory(principal=principal)
    yield exchange_pb2_grpc.ExchangeServiceStub(channel)
    await channel.close()


@pytest.fixture(scope="module")
async def admin(grpc_create_channel: ChannelFactory) -> AsyncIterator[Stub]:
    async for stub in _stub(grpc_create_channel, "access-admin-5001"):
        yield stub


@pytest.fixture(scope="module")
async def service(grpc_create_channel: ChannelFactory) -> AsyncIterator[Stub]:
    async for stub in _stub(grpc_create_channel, "justice-server"):
        yield stub


@pytest.fixture(scope="module")
async def court(grpc_create_channel: ChannelFactory) -> AsyncIterator[Stub]:
    async for stub in _stub(grpc_create_channel, "court-brussels"):
        yield stub


@pytest.fixture(scope="module")
async def officer(grpc_create_channel: ChannelFactory) -> AsyncIterator[Stub]:
    async for stub in _stub(grpc_create_channel, "officer-1001"):
        yield stub


def _partner(pki: DevPki, partner_id: str, **overrides: object) -> pb.Partner:
    cert, _ = pki.signing_paths(partner_id)
    partner = pb.Partner(
        kind=pb.COURT,
        country="BE",
        signing_certificate_pem=cert.read_text(),
        send_types=["report_acknowledged"],
        receive_types=["report_submitted"],
    )
    return overridden(partner, overrides)


async def _submit(grpc_stub: reports_pb2_grpc.ReportServiceStub, recipient: str) -> str:
    report = await create(grpc_stub)
    await grpc_stub.SignReport(reports_pb2.SignReportRequest(name=report.name))
    submitted = await grpc_stub.SubmitReport(
        reports_pb2.SubmitReportRequest(name=report.name, recipient=recipient)
    )
    return f"{submitted.name}@{submitted.version}"


async def test_partner_registry_lifecycle(admin: Stub, service: Stub, pki: DevPki) -> None:
    created = await admin.CreatePartner(
        pb.CreatePartnerRequest(
            partner_id="court-brussels", partner=_partner(pki, "court-brussels")
        )
    )
    assert created.name == "partners/court-brussels"
    assert created.nats_user == "partner-court-brussels"
    with pytest.raises(grpc.aio.AioRpcError) as duplicate:
        await admin.CreatePartner(
            pb.CreatePartnerRequest(
                partner_id="court-brussels", partner=_partner(pki, "court-brussels")
            )
        )
    assert rich_error(duplicate.value).reason == "PARTNER_EXISTS"
    assert duplicate.value.code() == grpc.StatusCode.ALREADY_EXISTS
    changed = _partner(pki, "court-brussels", send_types=["report_acknowledged", "report_rejected"])
    changed.name = created.name
    updated = await admin.UpdatePartner(pb.UpdatePartnerRequest(partner=changed))
    assert list(updated.send_types) == ["report_acknowledged", "report_rejected"]
    listed = await service.ListPartners(pb.ListPartnersRequest())
    assert "partners/court-brussels" in [p.name for p in listed.partners]


async def test_bad_partner_gets_field_violations_and_writes_nothing(
    admin: Stub, pki: DevPki
) -> None:
    bad = _partner(pki, "prosecutor-antwerp", country="Belgium", send_types=["Not A Type"])
    with pytest.raises(grpc.aio.AioRpcError) as error:
        # The certificate names prosecutor-antwerp, not this id.
        await admin.CreatePartner(pb.CreatePartnerRequest(partner_id="fines-agency", partner=bad))
    details = rich_error(error.value)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(details.fields) == {
        "partner.country",
        "partner.send_types[0]",
        "partner.signing_certificate_pem",
    }
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await admin.GetPartner(pb.GetPartnerRequest(name="partners/fines-agency"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_partner_sees_only_its_own_deliveries(
    grpc_stub: reports_pb2_grpc.ReportServiceStub, service: Stub, court: Stub
) -> None:
    mine = await _submit(grpc_stub, "court-brussels")
    other = await _submit(grpc_stub, "prosecutor-antwerp")
    everything = await service.ListDeliveries(pb.ListDeliveriesRequest())
    by_ref = {d.subject_ref: d for d in everything.deliveries}
    assert by_ref[mine].state == pb.PENDING
    assert by_ref[other].state == pb.PENDING
    own = await court.ListDeliveries(pb.ListDeliveriesRequest())
    assert {d.recipient for d in own.deliveries} == {"court-brussels"}
    assert mine in [d.subject_ref for d in own.deliveries]
    sneaky = await court.ListDeliveries(
        pb.ListDeliveriesRequest(filter='recipient = "prosecutor-antwerp"')
    )
    assert list(sneaky.deliveries) == []
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await court.GetDelivery(pb.GetDeliveryRequest(name=by_ref[other].name))
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await court.GetDelivery(pb.GetDeliveryRequest(name=by_ref[mine].name))).recipient == (
        "court-brussels"
    )
    status = await service.GetRelayStatus(pb.GetRelayStatusRequest())
    assert status.backlog >= 2
    assert status.HasField("oldest_pending_time")


async def test_redeliver_only_settled_badly(
    grpc_stub: reports_pb2_grpc.ReportServiceStub, service: Stub
) -> None:
    ref = await _submit(grpc_stub, "court-brussels")
    listed = await service.ListDeliveries(pb.ListDeliveriesRequest(filter='state = "PENDING"'))
    delivery = next(d for d in listed.deliveries if d.subject_ref == ref)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await service.RedeliverDelivery(pb.RedeliverDeliveryRequest(name=delivery.name))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rich_error(error.value).reason == "NOT_REDELIVERABLE"
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await service.GetDelivery(pb.GetDeliveryRequest(name="deliveries/../x"))
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_bad_filter_and_unauthorised_callers(
    service: Stub, officer: Stub, court: Stub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await service.ListDeliveries(pb.ListDeliveriesRequest(filter='state = "LOST"'))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "filter" in rich_error(error.value).fields
    for call in (
        officer.ListDeliveries(pb.ListDeliveriesRequest()),
        court.ListDeadLetters(pb.ListDeadLettersRequest()),
        court.CreatePartner(pb.CreatePartnerRequest(partner_id="x")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await call
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_delivery_receipt_errors(
    service: Stub, court: Stub, grpc_stub: reports_pb2_grpc.ReportServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await service.GetDeliveryReceipt(pb.GetDeliveryReceiptRequest(name="deliveries/x"))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in rich_error(error.value).fields

    await _submit(grpc_stub, "court-brussels")
    listed = await court.ListDeliveries(pb.ListDeliveriesRequest())
    unanswered = f"{listed.deliveries[0].name}/receipt"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await court.GetDeliveryReceipt(pb.GetDeliveryReceiptRequest(name=unanswered))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert rich_error(error.value).reason == "RECEIPT_NOT_FOUND"
