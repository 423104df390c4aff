"""Access administration on an in-memory unit of work (tests/fakes/access.py): personnel
events, unit-bound roles and four eyes, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from justice.access.model import Grant, PersonnelEvent, PersonnelEventType, UserState
from justice.access.service import AccessService, Enrolment
from justice.platform.errors import FailedPrecondition, PermissionDenied
from justice.security.approvals import ApprovalRequest, ApprovalState, FourEyes
from justice.security.principal import Principal, Role
from tests.fakes.access import AccessTables, AccessUnit
from tests.fakes.unit_of_work import Tables

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ADMIN = Principal("admin-1", "Federal Police", "", roles=frozenset({Role.ACCESS_ADMIN}))
SECOND_ADMIN = Principal("admin-2", "Federal Police", "", roles=frozenset({Role.ACCESS_ADMIN}))


def _service(tables: Tables[AccessTables]) -> tuple[AccessService, list[str]]:
    changes: list[str] = []
    service = AccessService(
        uow=lambda: AccessUnit(tables),
        four_eyes=FourEyes(clock=lambda: NOW, ttl=timedelta(days=1)),
        clock=lambda: NOW,
        four_eyes_roles=frozenset({Role.AUDITOR}),
    )
    service.on_change(lambda: changes.append("changed"))
    return service, changes


def _member(user: str, unit: str, role: Role) -> Enrolment:
    """A member of `unit`, which hands every member `role`."""
    return Enrolment(
        user=user,
        agency="PZ Antwerpen",
        unit=unit,
        unit_name=unit.title(),
        unit_partner="",
        member_roles=frozenset({role}),
        personal_roles=frozenset(),
    )


async def _enrolled() -> tuple[AccessService, Tables[AccessTables], list[str]]:
    tables = Tables(AccessTables())
    service, changes = _service(tables)
    await service.enrol(
        [
            _member("officer-1001", "team-a", Role.REPORT_WRITER),
            _member("custodian-1", "depot", Role.CUSTODIAN),
        ]
    )
    return service, tables, changes


def _event(kind: PersonnelEventType, unit: str = "", event_id: str = "") -> PersonnelEvent:
    return PersonnelEvent(event_id or f"hr-{kind.value}", kind, "officer-1001", unit=unit)


async def test_a_departure_ends_every_role_once_and_ends_old_tokens() -> None:
    service, tables, changes = await _enrolled()
    changes.clear()
    departed = await service.record_event(_event(PersonnelEventType.DEPARTED), "hr-feed")
    assert departed.user.state is UserState.DEPARTED
    assert departed.roles == frozenset()
    assert departed.user.unit == ""
    assert departed.user.credentials_valid_after == NOW
    standing = await service.standing("officer-1001")
    assert standing is not None
    assert not standing.active
    assert changes == ["changed"]  # the identity cache is told once
    # The same event again (a redelivery) changes nothing and commits nothing.
    commits = tables.commits
    again = await service.record_event(_event(PersonnelEventType.DEPARTED), "hr-feed")
    assert again.user.state is UserState.DEPARTED
    assert tables.commits == commits


async def test_a_transfer_swaps_the_unit_bound_roles() -> None:
    service, _, _ = await _enrolled()
    moved = await service.record_event(_event(PersonnelEventType.TRANSFERRED, "depot"), "hr")
    assert moved.user.unit == "depot"
    assert moved.roles == frozenset({Role.CUSTODIAN})


async def test_a_departed_officer_cannot_be_placed_without_being_hired() -> None:
    service, tables, _ = await _enrolled()
    await service.record_event(_event(PersonnelEventType.DEPARTED), "hr")
    with pytest.raises(FailedPrecondition) as refused:
        await service.record_event(_event(PersonnelEventType.PLACED, "team-a"), "hr")
    assert refused.value.reason == "USER_DEPARTED"
    assert tables.state.users["officer-1001"].unit == ""


async def test_a_four_eyes_role_waits_for_a_second_admin() -> None:
    service, _, _ = await _enrolled()
    with pytest.raises(PermissionDenied) as refused:
        await service.grant_role(ADMIN, "users/admin-1", Role.AUDITOR, "", None, "")
    assert refused.value.reason == "SELF_GRANT"
    opened = await service.grant_role(
        ADMIN, "users/officer-1001", Role.AUDITOR, "audit duty", None, "req-1"
    )
    assert isinstance(opened, ApprovalRequest)
    assert Role.AUDITOR not in (await service.get_user("users/officer-1001")).roles
    # The requester cannot approve their own request; another admin can.
    with pytest.raises(PermissionDenied) as own:
        await service.decide(ADMIN, opened.name, approve=True)
    assert own.value.reason == "SELF_APPROVAL"
    approved = await service.decide(SECOND_ADMIN, opened.name, approve=True)
    assert approved.state is ApprovalState.APPROVED
    assert Role.AUDITOR in (await service.get_user("users/officer-1001")).roles


async def test_an_ordinary_grant_is_idempotent_by_request_id() -> None:
    service, tables, _ = await _enrolled()
    first = await service.grant_role(
        ADMIN, "users/officer-1001", Role.FINES_OFFICER, "fines desk", None, "req-7"
    )
    second = await service.grant_role(
        ADMIN, "users/officer-1001", Role.FINES_OFFICER, "fines desk", None, "req-7"
    )
    assert isinstance(first, Grant)
    assert isinstance(second, Grant)
    assert first.id == second.id
    assert [g.role for g in tables.state.grants if g.user == "officer-1001"].count(
        Role.FINES_OFFICER
    ) == 1
