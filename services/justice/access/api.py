"""AccessService servicer: proto in, domain call, proto out. No SQL, no rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc

from justice.access.model import (
    Grant,
    PersonnelEvent,
    PersonnelEventType,
    Unit,
    UserState,
    unit_id,
)
from justice.access.service import AccessService, UserView
from justice.access.v1 import access_pb2 as pb
from justice.access.v1 import access_pb2_grpc
from justice.platform.errors import FieldViolation, InvalidArgument
from justice.platform.listing import next_token, page, parse_filter
from justice.platform.timestamps import moment, timestamp
from justice.security.approvals import ApprovalRequest, ApprovalState
from justice.security.identity import current_principal
from justice.security.principal import Role

Context = grpc.aio.ServicerContext[Any, Any]

_USER_STATES = {
    UserState.ACTIVE: pb.USER_STATE_ACTIVE,
    UserState.SUSPENDED: pb.USER_STATE_SUSPENDED,
    UserState.DEPARTED: pb.USER_STATE_DEPARTED,
}
_APPROVAL_STATES = {
    ApprovalState.PENDING: pb.APPROVAL_STATE_PENDING,
    ApprovalState.APPROVED: pb.APPROVAL_STATE_APPROVED,
    ApprovalState.REJECTED: pb.APPROVAL_STATE_REJECTED,
    ApprovalState.EXPIRED: pb.APPROVAL_STATE_EXPIRED,
}


def _role(value: int, field: str) -> Role:
    try:
        return Role(pb.Role.Name(pb.Role.ValueType(value)))
    except ValueError:
        raise InvalidArgument.of([FieldViolation(field, "a role")]) from None


def _unit_id(name: str, field: str) -> str:
    return unit_id(name, field) if name else ""


def unit_to_proto(unit: Unit) -> pb.Unit:
    return pb.Unit(
        name=unit.name,
        display_name=unit.display_name,
        agency=unit.agency,
        partner=unit.partner,
        member_roles=[pb.Role.Value(r.value) for r in sorted(unit.member_roles)],
        create_time=timestamp(unit.create_time),
    )


def user_to_proto(view: UserView) -> pb.User:
    user = view.user
    return pb.User(
        name=user.name,
        state=_USER_STATES[user.state],
        agency=user.agency,
        unit=f"units/{user.unit}" if user.unit else "",
        service_account=user.service_account,
        roles=[pb.Role.Value(r.value) for r in sorted(view.roles)],
        create_time=timestamp(user.create_time),
        update_time=timestamp(user.update_time),
    )


def grant_to_proto(grant: Grant) -> pb.Grant:
    return pb.Grant(
        name=grant.name,
        role=pb.Role.Value(grant.role.value),
        unit=f"units/{grant.unit}" if grant.unit else "",
        granted_by=grant.granted_by,
        approval=grant.approval,
        reason=grant.reason,
        create_time=timestamp(grant.create_time),
        expire_time=timestamp(grant.expire_time),
        revoke_time=timestamp(grant.revoke_time),
        revoked_by=grant.revoked_by,
    )


def approval_to_proto(request: ApprovalRequest, now: datetime) -> pb.Approval:
    return pb.Approval(
        name=request.name,
        action=request.action,
        resource=request.resource,
        summary=request.summary,
        requested_by=request.requested_by,
        approver_roles=[pb.Role.Value(r.value) for r in sorted(request.approver_roles)],
        state=_APPROVAL_STATES[request.state_at(now)],
        decided_by=request.decided_by,
        create_time=timestamp(request.create_time),
        expire_time=timestamp(request.expire_time),
        decide_time=timestamp(request.decide_time),
    )


def event_from_proto(event: pb.PersonnelEvent) -> PersonnelEvent:
    try:
        kind = PersonnelEventType(pb.PersonnelEventType.Name(event.type))
    except ValueError:
        raise InvalidArgument.of([FieldViolation("event.type", "a personnel event type")]) from None
    user = event.user.removeprefix("users/") if event.user.startswith("users/") else ""
    return PersonnelEvent(
        event_id=event.event_id,
        type=kind,
        user=user,
        unit=_unit_id(event.unit, "event.unit"),
        agency=event.agency,
        service_account=event.service_account,
    )


def _user_state(value: str) -> UserState:
    return UserState(value.upper().removeprefix("USER_STATE_"))


class AccessApi(access_pb2_grpc.AccessServiceServicer):
    def __init__(self, service: AccessService, clock: Any) -> None:
        self._service = service
        self._clock = clock

    async def CreateUnit(self, request: pb.CreateUnitRequest, context: Context) -> pb.Unit:
        roles = frozenset(
            _role(r, f"unit.member_roles[{i}]") for i, r in enumerate(request.unit.member_roles)
        )
        unit = await self._service.create_unit(
            request.unit_id,
            request.unit.display_name,
            request.unit.agency,
            request.unit.partner,
            roles,
        )
        return unit_to_proto(unit)

    async def ListUnits(
        self, request: pb.ListUnitsRequest, context: Context
    ) -> pb.ListUnitsResponse:
        query = page(request.page_size, request.page_token)
        units = await self._service.list_units(query)
        last = units[-1].id if len(units) == query.size else None
        return pb.ListUnitsResponse(
            units=[unit_to_proto(u) for u in units], next_page_token=next_token(last)
        )

    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> pb.User:
        return user_to_proto(await self._service.get_user(request.name))

    async def ListUsers(
        self, request: pb.ListUsersRequest, context: Context
    ) -> pb.ListUsersResponse:
        terms = parse_filter(
            request.filter, {"unit": lambda v: _unit_id(v, "filter"), "state": _user_state}
        )
        query = page(request.page_size, request.page_token)
        users = await self._service.list_users(query, terms.get("unit"), terms.get("state"))
        last = users[-1].user.id if len(users) == query.size else None
        return pb.ListUsersResponse(
            users=[user_to_proto(u) for u in users], next_page_token=next_token(last)
        )

    async def RecordPersonnelEvent(
        self, request: pb.RecordPersonnelEventRequest, context: Context
    ) -> pb.User:
        event = event_from_proto(request.event)
        view = await self._service.record_event(event, current_principal().id)
        return user_to_proto(view)

    async def GrantRole(
        self, request: pb.GrantRoleRequest, context: Context
    ) -> pb.GrantRoleResponse:
        expire_time = moment(request, "expire_time")
        result = await self._service.grant_role(
            current_principal(),
            request.user,
            _role(request.role, "role"),
            request.reason,
            expire_time,
            request.request_id,
        )
        if isinstance(result, ApprovalRequest):
            return pb.GrantRoleResponse(approval=approval_to_proto(result, self._clock()))
        return pb.GrantRoleResponse(grant=grant_to_proto(result))

    async def RevokeGrant(self, request: pb.RevokeGrantRequest, context: Context) -> pb.Grant:
        return grant_to_proto(await self._service.revoke_grant(current_principal(), request.name))

    async def ListGrants(
        self, request: pb.ListGrantsRequest, context: Context
    ) -> pb.ListGrantsResponse:
        query = page(request.page_size, request.page_token)
        grants = await self._service.list_grants(request.parent, request.show_inactive)
        grants = [g for g in grants if g.id > query.after][: query.size]
        last = grants[-1].id if len(grants) == query.size else None
        return pb.ListGrantsResponse(
            grants=[grant_to_proto(g) for g in grants], next_page_token=next_token(last)
        )

    async def ListApprovals(
        self, request: pb.ListApprovalsRequest, context: Context
    ) -> pb.ListApprovalsResponse:
        query = page(request.page_size, request.page_token)
        found, after = await self._service.pending_approvals(current_principal(), query)
        now = self._clock()
        return pb.ListApprovalsResponse(
            approvals=[approval_to_proto(a, now) for a in found], next_page_token=next_token(after)
        )

    async def ApproveRequest(
        self, request: pb.ApproveRequestRequest, context: Context
    ) -> pb.Approval:
        decided = await self._service.decide(current_principal(), request.name, approve=True)
        return approval_to_proto(decided, self._clock())

    async def RejectRequest(
        self, request: pb.RejectRequestRequest, context: Context
    ) -> pb.Approval:
        if len(request.reason) > 500:
            raise InvalidArgument.of([FieldViolation("reason", "at most 500 characters")])
        decided = await self._service.decide(
            current_principal(), request.name, approve=False, reason=request.reason
        )
        return approval_to_proto(decided, self._clock())

    async def RevokeCertificate(
        self, request: pb.RevokeCertificateRequest, context: Context
    ) -> pb.RevokedCertificate:
        actor = current_principal()
        when = await self._service.revoke_certificate(actor, request.serial_number, request.user)
        return pb.RevokedCertificate(
            serial_number=request.serial_number.lower(),
            user=request.user,
            revoked_by=actor.id,
            revoke_time=timestamp(when),
        )
