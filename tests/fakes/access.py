"""The access domain's unit of work in memory: units, users, grants, revoked certificates,
seen personnel events, and the four-eyes approvals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from justice.access.model import Grant, PersonnelEvent, Unit, User, UserState
from justice.platform.listing import Page
from justice.security.approvals import ApprovalRequest, ApprovalState
from tests.fakes.unit_of_work import InMemoryUnitOfWork


@dataclass
class AccessTables:
    units: dict[str, Unit] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)
    revoked: dict[str, str] = field(default_factory=dict)  # serial -> owner
    events: set[str] = field(default_factory=set)
    approvals: dict[str, ApprovalRequest] = field(default_factory=dict)


class InMemoryAccess:
    def __init__(self, tables: AccessTables) -> None:
        self._t = tables

    async def add_unit(self, unit: Unit) -> None:
        self._t.units[unit.id] = unit

    async def get_unit(self, unit_id: str) -> Unit | None:
        return self._t.units.get(unit_id)

    async def list_units(self, page: Page) -> Sequence[Unit]:
        return [u for _, u in sorted(self._t.units.items()) if u.id > page.after][: page.size]

    async def add_user(self, user: User) -> None:
        self._t.users[user.id] = user

    async def get_user(self, user_id: str) -> User | None:
        return self._t.users.get(user_id)

    async def update_user(self, user: User) -> None:
        self._t.users[user.id] = user

    async def list_users(
        self, page: Page, unit: str | None, state: UserState | None
    ) -> Sequence[User]:
        return [
            u
            for _, u in sorted(self._t.users.items())
            if u.id > page.after and unit in (None, u.unit) and state in (None, u.state)
        ][: page.size]

    async def add_grant(self, grant: Grant) -> None:
        self._t.grants.append(grant)

    async def grants_of(self, user_id: str) -> list[Grant]:
        return [g for g in self._t.grants if g.user == user_id]

    async def grant_by_request(self, granted_by: str, request_id: str) -> Grant | None:
        return next(
            (g for g in self._t.grants if (g.granted_by, g.request_id) == (granted_by, request_id)),
            None,
        )

    async def update_grant(self, grant: Grant) -> None:
        self._t.grants = [grant if g.id == grant.id else g for g in self._t.grants]

    async def revoke_certificate(self, serial: str, user: str, by: str, now: datetime) -> None:
        self._t.revoked[serial] = user

    async def revoked_serials(self) -> frozenset[str]:
        return frozenset(self._t.revoked)

    async def event_seen(self, event_id: str) -> bool:
        return event_id in self._t.events

    async def record_event(self, event: PersonnelEvent, now: datetime) -> None:
        self._t.events.add(event.event_id)


class InMemoryApprovals:
    """Four-eyes requests (justice.security.approvals), for any domain that opens them."""

    def __init__(self, rows: dict[str, ApprovalRequest]) -> None:
        self._rows = rows

    async def add(self, request: ApprovalRequest) -> None:
        self._rows[request.id] = request

    async def get(self, approval_id: str) -> ApprovalRequest | None:
        return self._rows.get(approval_id)

    async def by_request(self, requested_by: str, request_id: str) -> ApprovalRequest | None:
        return next(
            (
                r
                for r in self._rows.values()
                if (r.requested_by, r.request_id) == (requested_by, request_id)
            ),
            None,
        )

    async def update(self, request: ApprovalRequest) -> None:
        self._rows[request.id] = request

    async def pending(self, now: datetime, page: Page) -> Sequence[ApprovalRequest]:
        return [
            r
            for _, r in sorted(self._rows.items())
            if r.id > page.after and r.state_at(now) is ApprovalState.PENDING
        ][: page.size]


class AccessUnit(InMemoryUnitOfWork[AccessTables]):
    @property
    def access(self) -> InMemoryAccess:
        return InMemoryAccess(self.staged)

    @property
    def approvals(self) -> InMemoryApprovals:
        return InMemoryApprovals(self.staged.approvals)
