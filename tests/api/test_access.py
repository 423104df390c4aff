"""AccessService over mTLS: four eyes for high grants, personnel events, revocation timing."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from justice.access.v1 import access_pb2 as pb
from justice.access.v1 import access_pb2_grpc
from justice.reports.v1 import reports_pb2, reports_pb2_grpc
from tests.api.conftest import ChannelFactory, Enrol
from tests.api.rich_status import rich_error

Stub = access_pb2_grpc.AccessServiceStub
PURPOSE = (("x-justice-purpose", "access test"),)


@pytest.fixture(scope="module")
async def admin(grpc_create_channel: ChannelFactory) -> AsyncIterator[Stub]:
    async with grpc_create_channel(principal="access-admin-5001") as channel:
        yield Stub(channel)


@pytest.fixture(scope="module")
async def second_admin(grpc_create_channel: ChannelFactory) -> AsyncIterator[Stub]:
    async with grpc_create_channel(principal="access-admin-5002") as channel:
        yield Stub(channel)


async def hire(admin: Stub, user: str, unit: str = "units/pz-antwerpen-team-a") -> pb.User:
    event = pb.PersonnelEvent(event_id=str(uuid.uuid4()), type=pb.HIRED, user=f"users/{user}")
    event.unit = unit
    return await admin.RecordPersonnelEvent(pb.RecordPersonnelEventRequest(event=event))


async def test_high_grant_needs_a_second_admin(
    admin: Stub, second_admin: Stub, enrol: Enrol
) -> None:
    await enrol("grantee-6001")
    response = await admin.GrantRole(
        pb.GrantRoleRequest(user="users/grantee-6001", role=pb.AUDITOR, reason="audit team")
    )
    assert response.WhichOneof("result") == "approval"
    approval = response.approval
    assert approval.state == pb.APPROVAL_STATE_PENDING
    user = await admin.GetUser(pb.GetUserRequest(name="users/grantee-6001"), metadata=PURPOSE)
    assert pb.AUDITOR not in user.roles

    # The requester can neither see it as pending for them nor approve it.
    mine = await admin.ListApprovals(pb.ListApprovalsRequest())
    assert approval.name not in [a.name for a in mine.approvals]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.ApproveRequest(pb.ApproveRequestRequest(name=approval.name))
    assert rich_error(caught.value).reason == "SELF_APPROVAL"

    pending = await second_admin.ListApprovals(pb.ListApprovalsRequest())
    assert approval.name in [a.name for a in pending.approvals]
    decided = await second_admin.ApproveRequest(pb.ApproveRequestRequest(name=approval.name))
    assert (decided.state, decided.decided_by) == (pb.APPROVAL_STATE_APPROVED, "access-admin-5002")
    user = await admin.GetUser(pb.GetUserRequest(name="users/grantee-6001"), metadata=PURPOSE)
    assert pb.AUDITOR in user.roles

    # Decided once only.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await second_admin.ApproveRequest(pb.ApproveRequestRequest(name=approval.name))
    assert rich_error(caught.value).reason == "APPROVAL_DECIDED"


async def test_low_grant_is_immediate_and_self_grant_is_refused(admin: Stub, enrol: Enrol) -> None:
    await enrol("grantee-6002")
    response = await admin.GrantRole(
        pb.GrantRoleRequest(user="users/grantee-6002", role=pb.FINES_OFFICER, reason="desk")
    )
    assert response.WhichOneof("result") == "grant"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.GrantRole(
            pb.GrantRoleRequest(user="users/access-admin-5001", role=pb.FINES_OFFICER)
        )
    assert (rich_error(caught.value).code, rich_error(caught.value).reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "SELF_GRANT",
    )


async def test_bad_grant_requests_are_invalid_argument(admin: Stub) -> None:
    for request, field in [
        (pb.GrantRoleRequest(user="nobody", role=pb.AUDITOR), "user"),
        (pb.GrantRoleRequest(user="users/officer-1001", role=99), "role"),
        (pb.GrantRoleRequest(user="users/officer-1001", role=pb.ROLE_UNSPECIFIED), "role"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin.GrantRole(request)
        error = rich_error(caught.value)
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert field in error.fields


async def test_departure_revokes_access_within_five_seconds(
    admin: Stub, grpc_create_channel: ChannelFactory, pki: object
) -> None:
    from justice.devstack.pki import DevPki

    assert isinstance(pki, DevPki)
    user = "leaver-6003"
    await hire(admin, user)
    pki.issue_client(user, "Federal Police", "PZ Antwerpen/Team A")
    async with grpc_create_channel(principal=user) as channel:
        reports = reports_pb2_grpc.ReportServiceStub(channel)
        # An open session that works: the unit's member role REPORT_WRITER came with the hire.
        await reports.ListReports(reports_pb2.ListReportsRequest(), metadata=PURPOSE)
        event = pb.PersonnelEvent(
            event_id=str(uuid.uuid4()), type=pb.DEPARTED, user=f"users/{user}"
        )
        await admin.RecordPersonnelEvent(pb.RecordPersonnelEventRequest(event=event))
        started = time.monotonic()
        refused: grpc.aio.AioRpcError | None = None
        while refused is None and time.monotonic() - started < 5.0:
            try:
                await reports.ListReports(reports_pb2.ListReportsRequest(), metadata=PURPOSE)
            except grpc.aio.AioRpcError as error:
                refused = error
        elapsed = time.monotonic() - started
    assert refused is not None, "still served 5 s after the departure"
    assert rich_error(refused).reason == "PRINCIPAL_INACTIVE"
    assert elapsed < 5.0
    user_state = await admin.GetUser(pb.GetUserRequest(name=f"users/{user}"), metadata=PURPOSE)
    assert user_state.state == pb.USER_STATE_DEPARTED
    assert list(user_state.roles) == []


async def test_reading_personnel_data_needs_a_purpose(admin: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.GetUser(pb.GetUserRequest(name="users/officer-1001"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    user = await admin.GetUser(pb.GetUserRequest(name="users/officer-1001"), metadata=PURPOSE)
    assert user.name == "users/officer-1001"


async def test_transfer_swaps_unit_roles_and_keeps_personal_ones(admin: Stub) -> None:
    user = "mover-6004"
    await hire(admin, user)
    await admin.GrantRole(pb.GrantRoleRequest(user=f"users/{user}", role=pb.FINES_OFFICER))
    await admin.CreateUnit(
        pb.CreateUnitRequest(
            unit_id="seized-goods-gent",
            unit=pb.Unit(display_name="Seized Goods Gent", member_roles=[pb.CUSTODIAN]),
        )
    )
    event = pb.PersonnelEvent(
        event_id=str(uuid.uuid4()),
        type=pb.TRANSFERRED,
        user=f"users/{user}",
        unit="units/seized-goods-gent",
    )
    moved = await admin.RecordPersonnelEvent(pb.RecordPersonnelEventRequest(event=event))
    assert moved.unit == "units/seized-goods-gent"
    assert set(moved.roles) == {pb.CUSTODIAN, pb.FINES_OFFICER}
    # The same event again changes nothing (idempotent by event_id).
    again = await admin.RecordPersonnelEvent(pb.RecordPersonnelEventRequest(event=event))
    assert set(again.roles) == set(moved.roles)


async def test_a_unit_cannot_hand_out_four_eyes_roles(admin: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.CreateUnit(
            pb.CreateUnitRequest(
                unit_id="shadow-admins",
                unit=pb.Unit(display_name="Shadow", member_roles=[pb.ACCESS_ADMIN]),
            )
        )
    assert "unit.member_roles" in rich_error(caught.value).fields


async def test_revoked_certificate_is_unauthenticated(
    admin: Stub, grpc_create_channel: ChannelFactory, enrol: Enrol, pki: object
) -> None:
    from cryptography import x509

    from justice.devstack.pki import DevPki

    assert isinstance(pki, DevPki)
    user = await enrol("revokee-6005", frozenset())
    cert = x509.load_pem_x509_certificate(pki.client_paths(user)[0].read_bytes())
    await admin.RevokeCertificate(
        pb.RevokeCertificateRequest(
            serial_number=format(cert.serial_number, "x"), user=f"users/{user}"
        )
    )
    async with grpc_create_channel(principal=user) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await Stub(channel).ListUnits(pb.ListUnitsRequest())
    assert rich_error(caught.value).reason == "CERTIFICATE_REVOKED"


async def test_prosecutor_sees_only_reports_submitted_to_their_office(
    grpc_create_channel: ChannelFactory, enrol: Enrol
) -> None:
    from justice.security.principal import Role

    other_office = await enrol(
        "prosecutor-gent-1",
        frozenset({Role.PROSECUTOR}),
        unit="prosecutor-gent",
        unit_name="Gent",
        partner="prosecutor-gent",
    )
    async with (
        grpc_create_channel(principal="officer-1001") as officer,
        grpc_create_channel(principal="prosecutor-antwerp") as antwerp,
        grpc_create_channel(principal=other_office) as gent,
    ):
        writer = reports_pb2_grpc.ReportServiceStub(officer)
        draft = await writer.CreateReport(
            reports_pb2.CreateReportRequest(
                report=reports_pb2.Report(case_number="AN.1/26", narrative="x", language="nl")
            )
        )
        metadata = (("x-justice-purpose", "case review"),)
        # Not submitted: no prosecutor sees it.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await reports_pb2_grpc.ReportServiceStub(antwerp).GetReport(
                reports_pb2.GetReportRequest(name=draft.name), metadata=metadata
            )
        assert rich_error(caught.value).reason == "REPORT_NOT_VISIBLE"
        # The author's own read still works.
        mine = await writer.GetReport(
            reports_pb2.GetReportRequest(name=draft.name), metadata=metadata
        )
        assert mine.name == draft.name
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await reports_pb2_grpc.ReportServiceStub(gent).GetReport(
                reports_pb2.GetReportRequest(name=draft.name), metadata=metadata
            )
        assert rich_error(caught.value).code == grpc.StatusCode.PERMISSION_DENIED
