"""The approval table and its repository; used inside the owning service's transaction,
like the exchange outbox, so the decision and the operation commit together."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, update
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from justice.platform.db import UtcDateTime, execute, page_after
from justice.platform.errors import Aborted
from justice.platform.listing import Page
from justice.security.approvals import ApprovalRequest, ApprovalState
from justice.security.principal import Role


class ApprovalRow(SQLModel, table=True):
    __tablename__ = "approval_request"
    __table_args__ = (
        Index("ix_approval_request_request", "requested_by", "request_id", unique=True),
        Index("ix_approval_request_pending", "state", "id"),
    )

    id: str = Field(primary_key=True, max_length=24)
    action: str = Field(max_length=64)
    resource: str = Field(max_length=255)
    summary: str = Field(max_length=500)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    requested_by: str = Field(max_length=128)
    beneficiary: str = Field(max_length=128)
    approver_roles: str = Field(max_length=255)
    state: str = Field(max_length=16)
    create_time: datetime = Field(sa_type=UtcDateTime)
    expire_time: datetime = Field(sa_type=UtcDateTime)
    # NULL when absent: NULLs never collide in the unique index.
    request_id: str | None = Field(default=None, max_length=128)
    decided_by: str = Field(default="", max_length=128)
    decide_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    decision_reason: str = Field(default="", max_length=500)
    revision: int = 1


_TABLE: Any = ApprovalRow.__table__  # type: ignore[attr-defined]


def _to_domain(row: Any) -> ApprovalRequest:
    return ApprovalRequest(
        id=row.id,
        action=row.action,
        resource=row.resource,
        summary=row.summary,
        payload=json.loads(row.payload),
        requested_by=row.requested_by,
        beneficiary=row.beneficiary,
        approver_roles=frozenset(Role(r) for r in row.approver_roles.split(",") if r),
        create_time=row.create_time,
        expire_time=row.expire_time,
        request_id=row.request_id or "",
        state=ApprovalState(row.state),
        decided_by=row.decided_by,
        decide_time=row.decide_time,
        decision_reason=row.decision_reason,
        revision=row.revision,
    )


class SqlApprovals:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, request: ApprovalRequest) -> None:
        self._session.add(
            ApprovalRow(
                id=request.id,
                action=request.action,
                resource=request.resource,
                summary=request.summary,
                payload=json.dumps(dict(request.payload), sort_keys=True),
                requested_by=request.requested_by,
                beneficiary=request.beneficiary,
                approver_roles=",".join(sorted(request.approver_roles)),
                state=request.state.value,
                create_time=request.create_time,
                expire_time=request.expire_time,
                request_id=request.request_id or None,
            )
        )
        await self._session.flush()

    async def _one(self, query: Any) -> ApprovalRequest | None:
        row = (await execute(self._session, query)).first()
        return _to_domain(row) if row else None

    async def get(self, approval_id: str) -> ApprovalRequest | None:
        return await self._one(select(_TABLE).where(_TABLE.c.id == approval_id))

    async def by_request(self, requested_by: str, request_id: str) -> ApprovalRequest | None:
        return await self._one(
            select(_TABLE).where(
                _TABLE.c.requested_by == requested_by, _TABLE.c.request_id == request_id
            )
        )

    async def update(self, request: ApprovalRequest) -> None:
        result = await execute(
            self._session,
            update(_TABLE)
            .where(
                _TABLE.c.id == request.id,
                _TABLE.c.revision == request.revision,
                _TABLE.c.state == ApprovalState.PENDING.value,
            )
            .values(
                state=request.state.value,
                decided_by=request.decided_by,
                decide_time=request.decide_time,
                decision_reason=request.decision_reason,
                revision=request.revision + 1,
            ),
        )
        if getattr(result, "rowcount", 0) != 1:
            raise Aborted("CONCURRENT_DECISION", f"{request.name} was decided meanwhile")
        request.revision += 1

    async def pending(self, now: datetime, page: Page) -> Sequence[ApprovalRequest]:
        statement = select(_TABLE).where(
            _TABLE.c.state == ApprovalState.PENDING.value, _TABLE.c.expire_time > now
        )
        statement = page_after(statement, _TABLE.c.id, after=page.after, size=page.size)
        return [_to_domain(row) for row in (await execute(self._session, statement)).all()]
