"""Access tables and repository (sqlmodel). Only the access service reads these tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Index, update
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from justice.access.model import Grant, PersonnelEvent, Unit, User, UserState
from justice.platform.db import Transaction, UtcDateTime, execute, page_after, where_given
from justice.platform.errors import Aborted
from justice.platform.listing import Page
from justice.security.approval_store import SqlApprovals
from justice.security.principal import Role


class UnitRow(SQLModel, table=True):
    __tablename__ = "access_unit"

    id: str = Field(primary_key=True, max_length=64)
    display_name: str = Field(max_length=200)
    agency: str = Field(max_length=200)
    partner: str = Field(max_length=64)
    member_roles: str = Field(max_length=255)
    create_time: datetime = Field(sa_type=UtcDateTime)


class UserRow(SQLModel, table=True):
    __tablename__ = "access_user"

    id: str = Field(primary_key=True, max_length=128)
    state: str = Field(max_length=16, index=True)
    agency: str = Field(max_length=200)
    unit: str = Field(max_length=64, index=True)
    service_account: bool = False
    credentials_valid_after: datetime | None = Field(default=None, sa_type=UtcDateTime)
    create_time: datetime = Field(sa_type=UtcDateTime)
    update_time: datetime = Field(sa_type=UtcDateTime)
    revision: int = 1


class GrantRow(SQLModel, table=True):
    __tablename__ = "access_grant"
    __table_args__ = (Index("ix_access_grant_request", "granted_by", "request_id", unique=True),)

    id: str = Field(primary_key=True, max_length=24)
    user_id: str = Field(max_length=128, index=True)
    role: str = Field(max_length=32)
    unit: str = Field(max_length=64)
    granted_by: str = Field(max_length=128)
    approval: str = Field(max_length=64)
    reason: str = Field(max_length=500)
    create_time: datetime = Field(sa_type=UtcDateTime)
    expire_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    revoke_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    revoked_by: str = Field(default="", max_length=128)
    # NULL when absent: NULLs never collide in the unique index.
    request_id: str | None = Field(default=None, max_length=128)


class RevokedCertificateRow(SQLModel, table=True):
    __tablename__ = "access_revoked_certificate"

    serial: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(max_length=128)
    revoked_by: str = Field(max_length=128)
    revoke_time: datetime = Field(sa_type=UtcDateTime)


class PersonnelEventRow(SQLModel, table=True):
    __tablename__ = "access_personnel_event"

    event_id: str = Field(primary_key=True, max_length=128)
    user_id: str = Field(max_length=128, index=True)
    type: str = Field(max_length=16)
    unit: str = Field(max_length=64)
    record_time: datetime = Field(sa_type=UtcDateTime)


_UNIT: Any = UnitRow.__table__  # type: ignore[attr-defined]
_USER: Any = UserRow.__table__  # type: ignore[attr-defined]
_GRANT: Any = GrantRow.__table__  # type: ignore[attr-defined]
_REVOKED: Any = RevokedCertificateRow.__table__  # type: ignore[attr-defined]
_EVENT: Any = PersonnelEventRow.__table__  # type: ignore[attr-defined]


def _roles(text: str) -> frozenset[Role]:
    return frozenset(Role(r) for r in text.split(",") if r)


def _unit(row: Any) -> Unit:
    return Unit(
        row.id, row.display_name, row.agency, row.partner, _roles(row.member_roles), row.create_time
    )


def _user(row: Any) -> User:
    return User(
        id=row.id,
        state=UserState(row.state),
        agency=row.agency,
        unit=row.unit,
        service_account=row.service_account,
        create_time=row.create_time,
        update_time=row.update_time,
        credentials_valid_after=row.credentials_valid_after,
        revision=row.revision,
    )


def _grant(row: Any) -> Grant:
    return Grant(
        id=row.id,
        user=row.user_id,
        role=Role(row.role),
        unit=row.unit,
        granted_by=row.granted_by,
        create_time=row.create_time,
        approval=row.approval,
        reason=row.reason,
        expire_time=row.expire_time,
        revoke_time=row.revoke_time,
        revoked_by=row.revoked_by,
        request_id=row.request_id or "",
    )


class SqlAccessRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _rows(self, query: Any) -> Sequence[Any]:
        rows: Sequence[Any] = (await execute(self._session, query)).all()
        return rows

    async def add_unit(self, unit: Unit) -> None:
        self._session.add(
            UnitRow(
                id=unit.id,
                display_name=unit.display_name,
                agency=unit.agency,
                partner=unit.partner,
                member_roles=",".join(sorted(unit.member_roles)),
                create_time=unit.create_time,
            )
        )
        await self._session.flush()

    async def get_unit(self, unit_id: str) -> Unit | None:
        rows = await self._rows(select(_UNIT).where(_UNIT.c.id == unit_id))
        return _unit(rows[0]) if rows else None

    async def list_units(self, page: Page) -> Sequence[Unit]:
        query = page_after(select(_UNIT), _UNIT.c.id, after=page.after, size=page.size)
        return [_unit(row) for row in await self._rows(query)]

    async def add_user(self, user: User) -> None:
        self._session.add(
            UserRow(
                id=user.id,
                state=user.state.value,
                agency=user.agency,
                unit=user.unit,
                service_account=user.service_account,
                credentials_valid_after=user.credentials_valid_after,
                create_time=user.create_time,
                update_time=user.update_time,
                revision=user.revision,
            )
        )
        await self._session.flush()

    async def get_user(self, user_id: str) -> User | None:
        rows = await self._rows(select(_USER).where(_USER.c.id == user_id))
        return _user(rows[0]) if rows else None

    async def update_user(self, user: User) -> None:
        result = await execute(
            self._session,
            update(_USER)
            .where(_USER.c.id == user.id, _USER.c.revision == user.revision)
            .values(
                state=user.state.value,
                agency=user.agency,
                unit=user.unit,
                credentials_valid_after=user.credentials_valid_after,
                update_time=user.update_time,
                revision=user.revision + 1,
            ),
        )
        if getattr(result, "rowcount", 0) != 1:
            raise Aborted("CONCURRENT_CHANGE", f"{user.name} changed meanwhile; retry")
        user.revision += 1

    async def list_users(
        self, page: Page, unit: str | None, state: UserState | None
    ) -> Sequence[User]:
        query = page_after(
            where_given(
                select(_USER),
                (_USER.c.unit, unit),
                (_USER.c.state, state.value if state else None),
            ),
            _USER.c.id,
            after=page.after,
            size=page.size,
        )
        return [_user(row) for row in await self._rows(query)]

    async def add_grant(self, grant: Grant) -> None:
        self._session.add(
            GrantRow(
                id=grant.id,
                user_id=grant.user,
                role=grant.role.value,
                unit=grant.unit,
                granted_by=grant.granted_by,
                approval=grant.approval,
                reason=grant.reason,
                create_time=grant.create_time,
                expire_time=grant.expire_time,
                revoke_time=grant.revoke_time,
                revoked_by=grant.revoked_by,
                request_id=grant.request_id or None,
            )
        )
        await self._session.flush()

    async def grants_of(self, user_id: str) -> list[Grant]:
        query = select(_GRANT).where(_GRANT.c.user_id == user_id).order_by(_GRANT.c.id)
        return [_grant(row) for row in await self._rows(query)]

    async def grant_by_request(self, granted_by: str, request_id: str) -> Grant | None:
        rows = await self._rows(
            select(_GRANT).where(
                _GRANT.c.granted_by == granted_by, _GRANT.c.request_id == request_id
            )
        )
        return _grant(rows[0]) if rows else None

    async def update_grant(self, grant: Grant) -> None:
        # Only revocation changes a grant, and it never un-revokes.
        await execute(
            self._session,
            update(_GRANT)
            .where(_GRANT.c.id == grant.id, _GRANT.c.revoke_time.is_(None))
            .values(revoke_time=grant.revoke_time, revoked_by=grant.revoked_by),
        )

    async def revoke_certificate(self, serial: str, user_id: str, by: str, now: datetime) -> None:
        self._session.add(
            RevokedCertificateRow(serial=serial, user_id=user_id, revoked_by=by, revoke_time=now)
        )
        await self._session.flush()

    async def revoked_serials(self) -> frozenset[str]:
        return frozenset(row.serial for row in await self._rows(select(_REVOKED.c.serial)))

    async def event_seen(self, event_id: str) -> bool:
        rows = await self._rows(select(_EVENT.c.event_id).where(_EVENT.c.event_id == event_id))
        return bool(rows)

    async def record_event(self, event: PersonnelEvent, now: datetime) -> None:
        self._session.add(
            PersonnelEventRow(
                event_id=event.event_id,
                user_id=event.user,
                type=event.type.value,
                unit=event.unit,
                record_time=now,
            )
        )
        await self._session.flush()


class AccessTransaction(Transaction):
    """One transaction over the access tables and the approval requests."""

    def bind(self, session: AsyncSession) -> None:
        self.access = SqlAccessRepository(session)
        self.approvals = SqlApprovals(session)
