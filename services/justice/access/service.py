"""Access administration use cases: units, users, grants, four eyes, personnel events.

It is also the identity registry (security.identity.Directory): every RPC resolves its
caller through `standing()`, behind a cache that each commit empties (`on_change`).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from justice.access.model import (
    UNIT_ID,
    Grant,
    PersonnelEvent,
    PersonnelEventType,
    Unit,
    User,
    UserState,
    grant_ids,
    roles_in_force,
    user_id,
)
from justice.platform import ports
from justice.platform.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from justice.platform.listing import Page
from justice.security.approvals import ApprovalRepository, ApprovalRequest, FourEyes
from justice.security.principal import Principal, Role, Standing

GRANT_ACTION = "access.grant_role"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_SERIAL = re.compile(r"^[0-9a-f]{1,64}$")


class AccessRepository(Protocol):
    async def add_unit(self, unit: Unit) -> None: ...
    async def get_unit(self, unit_id: str) -> Unit | None: ...
    async def list_units(self, page: Page) -> Sequence[Unit]: ...
    async def add_user(self, user: User) -> None: ...
    async def get_user(self, user_id: str) -> User | None: ...
    async def update_user(self, user: User) -> None:
        """Write a changed user; raises Aborted if someone else changed it first."""

    async def list_users(
        self, page: Page, unit: str | None, state: UserState | None
    ) -> Sequence[User]: ...
    async def add_grant(self, grant: Grant) -> None: ...
    async def grants_of(self, user_id: str) -> list[Grant]: ...
    async def grant_by_request(self, granted_by: str, request_id: str) -> Grant | None: ...
    async def update_grant(self, grant: Grant) -> None: ...
    async def revoke_certificate(
        self, serial: str, user_id: str, by: str, now: datetime
    ) -> None: ...
    async def revoked_serials(self) -> frozenset[str]: ...
    async def event_seen(self, event_id: str) -> bool: ...
    async def record_event(self, event: PersonnelEvent, now: datetime) -> None: ...


class UnitOfWork(ports.UnitOfWork, Protocol):
    @property
    def access(self) -> AccessRepository: ...
    @property
    def approvals(self) -> ApprovalRepository: ...


@dataclass(frozen=True)
class UserView:
    user: User
    roles: frozenset[Role]


@dataclass(frozen=True)
class Enrolment:
    """A principal to register at bootstrap (the dev PKI's demo principals)."""

    user: str
    agency: str
    unit: str
    unit_name: str
    unit_partner: str
    member_roles: frozenset[Role]
    personal_roles: frozenset[Role]
    service_account: bool = False


def _new_id() -> str:
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def _check_request_id(request_id: str) -> None:
    if request_id and not _REQUEST_ID.match(request_id):
        raise InvalidArgument.of([FieldViolation("request_id", "1-128 of A-Z a-z 0-9 _ . : -")])


class AccessService:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        four_eyes: FourEyes,
        clock: Callable[[], datetime],
        four_eyes_roles: frozenset[Role],
    ) -> None:
        self._uow = uow
        self._four_eyes = four_eyes
        self._clock = clock
        self._high = four_eyes_roles
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every committed change (an identity cache empties itself)."""
        self._listeners.append(listener)

    async def _commit(self, uow: UnitOfWork) -> None:
        await uow.commit()
        # After the commit, so a lookup racing the change cannot cache the old answer.
        for listener in self._listeners:
            listener()

    # -- the identity registry -------------------------------------------------------------

    async def standing(self, subject: str) -> Standing | None:
        async with self._uow() as uow:
            user = await uow.access.get_user(subject)
            if user is None:
                return None
            unit = await uow.access.get_unit(user.unit) if user.unit else None
            grants = await uow.access.grants_of(user.id)
        return Standing(
            principal=Principal(
                id=user.id,
                agency=user.agency,
                unit=user.unit,
                unit_name=unit.display_name if unit else "",
                roles=roles_in_force(grants, self._clock()),
                partner=unit.partner if unit else "",
                service=user.service_account,
            ),
            active=user.state is UserState.ACTIVE,
            credentials_valid_after=user.credentials_valid_after,
        )

    async def revoked_serials(self) -> frozenset[str]:
        async with self._uow() as uow:
            return await uow.access.revoked_serials()

    # -- units and users ---------------------------------------------------------------------

    async def create_unit(
        self, unit_id_: str, display_name: str, agency: str, partner: str, roles: frozenset[Role]
    ) -> Unit:
        violations = []
        if not UNIT_ID.match(unit_id_):
            violations.append(FieldViolation("unit_id", "1-63 of a-z 0-9 -, starting alphanumeric"))
        if not 0 < len(display_name) <= 200:
            violations.append(FieldViolation("unit.display_name", "1-200 characters"))
        if len(agency) > 200:
            violations.append(FieldViolation("unit.agency", "at most 200 characters"))
        if partner and not UNIT_ID.match(partner):
            violations.append(FieldViolation("unit.partner", "a partner id"))
        high = roles & self._high
        if high:
            # Membership must never hand out a four-eyes role without four eyes.
            violations.append(
                FieldViolation("unit.member_roles", f"four-eyes roles: {', '.join(sorted(high))}")
            )
        if violations:
            raise InvalidArgument.of(violations)
        async with self._uow() as uow:
            if await uow.access.get_unit(unit_id_) is not None:
                raise AlreadyExists("UNIT_EXISTS", f"units/{unit_id_} exists")
            unit = Unit(unit_id_, display_name, agency, partner, roles, self._clock())
            await uow.access.add_unit(unit)
            await self._commit(uow)
            return unit

    async def list_units(self, page: Page) -> Sequence[Unit]:
        async with self._uow() as uow:
            return await uow.access.list_units(page)

    async def get_user(self, name: str) -> UserView:
        async with self._uow() as uow:
            user = await self._user(uow, user_id(name))
            grants = await uow.access.grants_of(user.id)
        return UserView(user, roles_in_force(grants, self._clock()))

    async def list_users(
        self, page: Page, unit: str | None, state: UserState | None
    ) -> Sequence[UserView]:
        now = self._clock()
        async with self._uow() as uow:
            users = await uow.access.list_users(page, unit, state)
            return [
                UserView(u, roles_in_force(await uow.access.grants_of(u.id), now)) for u in users
            ]

    # -- personnel events ----------------------------------------------------------------------

    async def record_event(self, event: PersonnelEvent, actor: str) -> UserView:
        """Apply a personnel event once (by event_id) and adjust the grants."""
        event.check()
        now = self._clock()
        async with self._uow() as uow:
            if await uow.access.event_seen(event.event_id):
                seen = await self._user(uow, event.user)
                grants = await uow.access.grants_of(seen.id)
                return UserView(seen, roles_in_force(grants, now))
            found = await uow.access.get_user(event.user)
            grants = await uow.access.grants_of(event.user) if found else []
            if event.type is PersonnelEventType.HIRED:
                user = await self._hire(uow, found, event, now)
            elif found is None:
                raise NotFound("USER_NOT_FOUND", f"no users/{event.user}")
            else:
                user = found
            if event.type in (PersonnelEventType.SUSPENDED, PersonnelEventType.DEPARTED):
                self._revoke_all(grants, f"personnel:{event.type.value}:{actor}", now)
                user.state = (
                    UserState.SUSPENDED
                    if event.type is PersonnelEventType.SUSPENDED
                    else UserState.DEPARTED
                )
                if event.type is PersonnelEventType.DEPARTED:
                    user.unit = ""
                user.credentials_valid_after = now
            elif event.unit:
                await self._place(uow, user, grants, event, actor, now)
            user.update_time = now
            await uow.access.update_user(user)
            for grant in grants:
                await uow.access.update_grant(grant)
            await uow.access.record_event(event, now)
            await self._commit(uow)
            return UserView(user, roles_in_force(await uow.access.grants_of(user.id), now))

    async def _hire(
        self, uow: UnitOfWork, user: User | None, event: PersonnelEvent, now: datetime
    ) -> User:
        if user is not None and user.state is UserState.ACTIVE:
            raise FailedPrecondition(
                "ALREADY_EMPLOYED", f"users/{user.id} is active", metadata={"state": "ACTIVE"}
            )
        if user is None:
            user = User(
                id=event.user,
                state=UserState.ACTIVE,
                agency=event.agency,
                unit="",
                service_account=event.service_account,
                create_time=now,
                update_time=now,
            )
            await uow.access.add_user(user)
            return user
        # Rehire (or return from suspension): a fresh start, old tokens stay dead.
        user.state = UserState.ACTIVE
        user.agency = event.agency or user.agency
        return user

    async def _place(
        self,
        uow: UnitOfWork,
        user: User,
        grants: list[Grant],
        event: PersonnelEvent,
        actor: str,
        now: datetime,
    ) -> None:
        if user.state is not UserState.ACTIVE and event.type is not PersonnelEventType.HIRED:
            if user.state is UserState.DEPARTED:
                raise FailedPrecondition("USER_DEPARTED", f"users/{user.id} has left; hire first")
            # A placement ends a suspension: the person is back on duty in that unit.
            user.state = UserState.ACTIVE
        if event.type is PersonnelEventType.TRANSFERRED and not user.unit:
            raise FailedPrecondition("NOT_PLACED", f"users/{user.id} has no unit to leave")
        unit = await uow.access.get_unit(event.unit)
        if unit is None:
            raise NotFound("UNIT_NOT_FOUND", f"no units/{event.unit}")
        # The swap: unit-bound roles of the old unit go, the new unit's come.
        for grant in grants:
            if grant.unit and grant.unit != unit.id:
                grant.revoke(f"personnel:{event.type.value}:{actor}", now)
        held = {g.role for g in grants if g.unit == unit.id and g.active_at(now)}
        for role in sorted(unit.member_roles - held):
            await uow.access.add_grant(
                Grant(
                    id=_new_id(),
                    user=user.id,
                    role=role,
                    unit=unit.id,
                    granted_by=f"personnel:{event.type.value}",
                    create_time=now,
                    reason=f"member of units/{unit.id}",
                )
            )
        user.unit = unit.id
        user.agency = event.agency or unit.agency or user.agency

    @staticmethod
    def _revoke_all(grants: Iterable[Grant], by: str, now: datetime) -> None:
        for grant in grants:
            grant.revoke(by, now)

    # -- grants and four eyes ------------------------------------------------------------------

    async def grant_role(
        self,
        actor: Principal,
        user_name: str,
        role: Role,
        reason: str,
        expire_time: datetime | None,
        request_id: str,
    ) -> Grant | ApprovalRequest:
        """Grant now, or, for a four-eyes role, open an approval for a second admin."""
        grantee = user_id(user_name, "user")
        _check_request_id(request_id)
        now = self._clock()
        violations = []
        if len(reason) > 500:
            violations.append(FieldViolation("reason", "at most 500 characters"))
        if expire_time is not None and expire_time <= now:
            violations.append(FieldViolation("expire_time", "must be in the future"))
        if violations:
            raise InvalidArgument.of(violations)
        if grantee == actor.id:
            raise PermissionDenied("SELF_GRANT", "nobody grants a role to themselves")
        async with self._uow() as uow:
            if request_id:
                earlier = await uow.access.grant_by_request(actor.id, request_id)
                if earlier is not None:
                    return earlier
            user = await self._user(uow, grantee)
            self._require_active(user)
            if role in self._high:
                approval = await self._four_eyes.open(
                    uow.approvals,
                    action=GRANT_ACTION,
                    resource=user.name,
                    summary=f"grant {role.value} to {user.name}",
                    payload={
                        "user": user.id,
                        "role": role.value,
                        "reason": reason,
                        "expire_time": expire_time.isoformat() if expire_time else "",
                    },
                    requested_by=actor,
                    beneficiary=user.id,
                    approver_roles=frozenset({Role.ACCESS_ADMIN}),
                    request_id=request_id,
                )
                await self._commit(uow)
                return approval
            grant = Grant(
                id=_new_id(),
                user=user.id,
                role=role,
                unit="",
                granted_by=actor.id,
                create_time=now,
                reason=reason,
                expire_time=expire_time,
                request_id=request_id,
            )
            await uow.access.add_grant(grant)
            await self._commit(uow)
            return grant

    async def pending_approvals(
        self, actor: Principal, page: Page
    ) -> tuple[list[ApprovalRequest], str | None]:
        async with self._uow() as uow:
            return await self._four_eyes.pending_for(uow.approvals, actor, page)

    async def decide(
        self, actor: Principal, name: str, *, approve: bool, reason: str = ""
    ) -> ApprovalRequest:
        """Decide a grant request; an approval creates the grant in the same transaction."""
        async with self._uow() as uow:
            request = await self._four_eyes.decide(
                uow.approvals, name, actor, approve=approve, action=GRANT_ACTION, reason=reason
            )
            if approve:
                await self._apply_grant(uow, request)
            await self._commit(uow)
            return request

    async def _apply_grant(self, uow: UnitOfWork, request: ApprovalRequest) -> None:
        payload = request.payload
        user = await self._user(uow, payload["user"])
        # Departed or suspended since the request: approving must not resurrect access.
        self._require_active(user)
        expires = payload.get("expire_time") or ""
        now = self._clock()
        expire_time = datetime.fromisoformat(expires) if expires else None
        if expire_time is not None and expire_time <= now:
            raise FailedPrecondition("GRANT_EXPIRED", "the requested grant has expired already")
        await uow.access.add_grant(
            Grant(
                id=_new_id(),
                user=user.id,
                role=Role(payload["role"]),
                unit="",
                granted_by=request.requested_by,
                create_time=now,
                approval=request.name,
                reason=payload.get("reason", ""),
                expire_time=expire_time,
            )
        )

    async def revoke_grant(self, actor: Principal, name: str) -> Grant:
        user, grant_id = grant_ids(name)
        async with self._uow() as uow:
            grant = next((g for g in await uow.access.grants_of(user) if g.id == grant_id), None)
            if grant is None:
                raise NotFound("GRANT_NOT_FOUND", f"no {name}", metadata={"name": name})
            if grant.revoke_time is None:
                grant.revoke(actor.id, self._clock())
                await uow.access.update_grant(grant)
                await self._commit(uow)
            return grant

    async def list_grants(self, parent: str, show_inactive: bool) -> list[Grant]:
        grantee = user_id(parent, "parent")
        now = self._clock()
        async with self._uow() as uow:
            await self._user(uow, grantee)
            grants = await uow.access.grants_of(grantee)
        return [g for g in grants if show_inactive or g.active_at(now)]

    async def revoke_certificate(self, actor: Principal, serial: str, user_name: str) -> datetime:
        owner = user_id(user_name, "user")
        serial = serial.lower().lstrip("0") or "0"
        if not _SERIAL.match(serial):
            raise InvalidArgument.of([FieldViolation("serial_number", "hexadecimal serial")])
        now = self._clock()
        async with self._uow() as uow:
            await self._user(uow, owner)
            if serial not in await uow.access.revoked_serials():
                await uow.access.revoke_certificate(serial, owner, actor.id, now)
                await self._commit(uow)
        return now

    # -- bootstrap -------------------------------------------------------------------------------

    async def enrol(self, enrolments: Iterable[Enrolment]) -> None:
        """Register missing principals with their units and roles (dev demo principals).

        Existing users are left alone, so a departed demo user stays departed.
        """
        now = self._clock()
        async with self._uow() as uow:
            for e in enrolments:
                if await uow.access.get_unit(e.unit) is None:
                    unit = Unit(e.unit, e.unit_name, e.agency, e.unit_partner, e.member_roles, now)
                    await uow.access.add_unit(unit)
                if await uow.access.get_user(e.user) is not None:
                    continue
                await uow.access.add_user(
                    User(e.user, UserState.ACTIVE, e.agency, e.unit, e.service_account, now, now)
                )
                for role, unit_bound in [
                    *((r, True) for r in sorted(e.member_roles)),
                    *((r, False) for r in sorted(e.personal_roles)),
                ]:
                    await uow.access.add_grant(
                        Grant(
                            id=_new_id(),
                            user=e.user,
                            role=role,
                            unit=e.unit if unit_bound else "",
                            granted_by="bootstrap",
                            create_time=now,
                            reason="dev demo principal",
                        )
                    )
            await self._commit(uow)

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    async def _user(uow: UnitOfWork, user: str) -> User:
        found = await uow.access.get_user(user)
        if found is None:
            raise NotFound("USER_NOT_FOUND", f"no users/{user}", metadata={"name": f"users/{user}"})
        return found

    @staticmethod
    def _require_active(user: User) -> None:
        if user.state is not UserState.ACTIVE:
            raise FailedPrecondition(
                "USER_NOT_ACTIVE",
                f"{user.name} is {user.state.value.lower()}",
                metadata={"state": user.state.value},
            )
