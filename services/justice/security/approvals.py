"""Four eyes: a generic approval mechanism for irreversible or high-impact operations.

One principal requests, a different one approves; the requester and the beneficiary can
never approve; requests expire. The owning service performs the operation in the same
transaction as the approval (AccessService for high grants; seized-goods disposal next):

    request = await four_eyes.open(uow.approvals, action="custody.dispose", ...)
    ...
    approved = await four_eyes.approve(uow.approvals, name, approver)
    do_the_thing(approved.payload)   # same transaction, then commit

Pure Python: the repository is a port; security/approval_store.py is the SQL adapter.
"""

from __future__ import annotations

import enum
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from justice.platform.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from justice.platform.listing import Page
from justice.security.principal import Principal, Role

_NAME = re.compile(r"^approvals/([a-f0-9]{24})$")


class ApprovalState(enum.StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


@dataclass
class ApprovalRequest:
    id: str
    action: str
    resource: str
    summary: str
    payload: Mapping[str, str]
    requested_by: str
    # Who gains from the operation (e.g. the grantee); may not approve either.
    beneficiary: str
    approver_roles: frozenset[Role]
    create_time: datetime
    expire_time: datetime
    request_id: str = ""
    state: ApprovalState = ApprovalState.PENDING
    decided_by: str = ""
    decide_time: datetime | None = None
    decision_reason: str = ""
    revision: int = 1

    @property
    def name(self) -> str:
        return f"approvals/{self.id}"

    def state_at(self, now: datetime) -> ApprovalState:
        if self.state is ApprovalState.PENDING and now >= self.expire_time:
            return ApprovalState.EXPIRED
        return self.state

    def may_decide(self, principal: Principal, now: datetime) -> bool:
        return (
            self.state_at(now) is ApprovalState.PENDING
            and principal.id not in (self.requested_by, self.beneficiary)
            and bool(self.approver_roles & principal.roles)
        )

    def decide(self, approver: Principal, approve: bool, now: datetime, reason: str = "") -> None:
        if approver.id in (self.requested_by, self.beneficiary):
            raise PermissionDenied(
                "SELF_APPROVAL",
                "a request cannot be approved by its requester or its beneficiary",
                metadata={"approval": self.name},
            )
        if not self.approver_roles & approver.roles:
            raise PermissionDenied(
                "NOT_AN_APPROVER",
                "the caller holds none of the roles that may decide this request",
                metadata={"approval": self.name, "roles": ",".join(sorted(self.approver_roles))},
            )
        current = self.state_at(now)
        if current is not ApprovalState.PENDING:
            raise FailedPrecondition(
                "APPROVAL_EXPIRED" if current is ApprovalState.EXPIRED else "APPROVAL_DECIDED",
                f"the request is {current.value.lower()}",
                metadata={"approval": self.name, "state": current.value},
            )
        self.state = ApprovalState.APPROVED if approve else ApprovalState.REJECTED
        self.decided_by = approver.id
        self.decide_time = now
        self.decision_reason = reason


class ApprovalRepository(Protocol):
    async def add(self, request: ApprovalRequest) -> None: ...
    async def get(self, approval_id: str) -> ApprovalRequest | None: ...
    async def by_request(self, requested_by: str, request_id: str) -> ApprovalRequest | None: ...
    async def update(self, request: ApprovalRequest) -> None:
        """Write a decided request; raises Aborted if it was decided concurrently."""

    async def pending(self, now: datetime, page: Page) -> Sequence[ApprovalRequest]:
        """Unexpired PENDING requests ordered by id, after page.after, at most page.size."""


def parse_name(name: str, field_name: str = "name") -> str:
    match = _NAME.match(name)
    if match is None:
        raise InvalidArgument.of([FieldViolation(field_name, "expected approvals/{approval}")])
    return match.group(1)


def _new_id() -> str:
    # Time-ordered so that listing pages are stable.
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


@dataclass
class FourEyes:
    """The reusable use cases; each runs inside the caller's transaction."""

    clock: Callable[[], datetime]
    ttl: timedelta
    _scan_limit: int = field(default=2_000, repr=False)

    async def open(
        self,
        repository: ApprovalRepository,
        *,
        action: str,
        resource: str,
        summary: str,
        payload: Mapping[str, str],
        requested_by: Principal,
        beneficiary: str,
        approver_roles: frozenset[Role],
        request_id: str = "",
    ) -> ApprovalRequest:
        if not approver_roles:
            raise ValueError("an approval needs at least one approver role")
        if request_id:
            earlier = await repository.by_request(requested_by.id, request_id)
            if earlier is not None:
                return earlier
        now = self.clock()
        request = ApprovalRequest(
            id=_new_id(),
            action=action,
            resource=resource,
            summary=summary,
            payload=dict(payload),
            requested_by=requested_by.id,
            beneficiary=beneficiary,
            approver_roles=approver_roles,
            create_time=now,
            expire_time=now + self.ttl,
            request_id=request_id,
        )
        await repository.add(request)
        return request

    async def get(self, repository: ApprovalRepository, name: str) -> ApprovalRequest:
        approval_id = parse_name(name)
        request = await repository.get(approval_id)
        if request is None:
            raise NotFound("APPROVAL_NOT_FOUND", f"no {name}", metadata={"name": name})
        return request

    async def decide(
        self,
        repository: ApprovalRepository,
        name: str,
        approver: Principal,
        *,
        approve: bool,
        action: str | None = None,
        reason: str = "",
    ) -> ApprovalRequest:
        """Approve or reject; `action` pins the kind the calling service knows how to run."""
        request = await self.get(repository, name)
        if action is not None and request.action != action:
            raise FailedPrecondition(
                "WRONG_ACTION",
                f"{name} is a {request.action} request",
                metadata={"action": request.action},
            )
        request.decide(approver, approve, self.clock(), reason)
        await repository.update(request)
        return request

    async def pending_for(
        self, repository: ApprovalRepository, approver: Principal, page: Page
    ) -> tuple[list[ApprovalRequest], str | None]:
        """The requests `approver` may decide now, and the key to continue after (or None)."""
        now = self.clock()
        found: list[ApprovalRequest] = []
        after, scanned = page.after, 0
        while len(found) < page.size and scanned < self._scan_limit:
            batch = await repository.pending(now, Page(page.size, after))
            if not batch:
                return found, None
            for request in batch:
                after = request.id
                if request.may_decide(approver, now):
                    found.append(request)
                    if len(found) == page.size:
                        return found, after
            scanned += len(batch)
            if len(batch) < page.size:
                return found, None
        return found, after
