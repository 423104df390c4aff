"""Decisions, holds and disposal with four eyes (security/approvals.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from justice.custody.ledger import (
    DISPOSE_ACTION,
    MESSAGE_TYPE_DECISION_REQUESTED,
    REFERENCE,
    REQUEST_ID,
    Change,
    Ledger,
    Scope,
    UnitOfWork,
    check_reference,
)
from justice.custody.model import (
    Decision,
    Disposal,
    Item,
)
from justice.exchange.message import OutgoingMessage
from justice.platform.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
)
from justice.security.approvals import ApprovalRequest, ApprovalState
from justice.security.principal import Principal, Role


class DispositionService(Ledger):
    """From a decision to the final disposition."""

    # -- decisions and disposal --------------------------------------------------------------

    async def request_decision(self, name: str, scope: Scope) -> Item:
        def act(item: Item) -> tuple[str, Mapping[str, str]]:
            item.await_decision()
            return "DECISION_REQUESTED", {"prosecutor": self.config.prosecutor}

        async with self._uow() as uow:
            item = await self._load(uow, name)
            self._require_custody(item, scope)
            event_type, data = act(item)
            await self._apply(uow, [Change(item, event_type, data)], scope.actor, self._clock())
            await uow.outbox.add(
                OutgoingMessage(
                    recipient=self.config.prosecutor,
                    message_type=MESSAGE_TYPE_DECISION_REQUESTED,
                    payload=json.dumps(
                        {
                            "item": item.name,
                            "case_number": item.case_number,
                            "chain_head": item.chain_head,
                            "sequence": item.chain_length,
                        },
                        sort_keys=True,
                    ).encode(),
                    subject_ref=f"{item.name}@{item.chain_length}:{item.chain_head}",
                )
            )
            await uow.commit()
        self._anchor([item])
        return item

    async def record_decision(self, actor: str, name: str, decision: Decision) -> Item:
        """The prosecutor's decision, from the API or a partner message (the same call).
        A decision with the same reference applies once, whichever way it came."""
        v: list[FieldViolation] = []
        if not REFERENCE.match(decision.reference):
            v.append(FieldViolation("reference", "1-128 of letters, digits, . _ / : # -"))
        if not decision.authority.strip() or len(decision.authority) > 256:
            v.append(FieldViolation("authority", "required, at most 256"))
        if not decision.date:
            v.append(FieldViolation("decision_date", "required"))
        if v:
            raise InvalidArgument.of(v)
        async with self._uow() as uow:
            item = await self._load(uow, name)
            if not await uow.inbox.claim(f"decision:{item.id}:{decision.reference}"):
                return item
            item.decide(decision)
            data = {
                "decision": decision.kind.value,
                "reference": decision.reference,
                "date": decision.date,
                "authority": decision.authority,
            }
            await self._apply(uow, [Change(item, "DECIDED", data)], actor, self._clock())
            await uow.commit()
        self._anchor([item])
        return item

    async def place_hold(self, name: str, reference: str, scope: Scope) -> Item:
        check_reference("reference", reference)

        def act(item: Item) -> tuple[str, Mapping[str, str]]:
            item.place_hold(reference)
            return "HOLD_PLACED", {"reference": reference}

        return await self._change_one(name, scope, act, custody=False)

    async def release_hold(self, name: str, reference: str, scope: Scope) -> Item:
        check_reference("reference", reference)

        def act(item: Item) -> tuple[str, Mapping[str, str]]:
            item.release_hold(reference)
            return "HOLD_RELEASED", {"reference": reference}

        return await self._change_one(name, scope, act, custody=False)

    async def request_disposal(
        self, name: str, disposal: Disposal, requester: Principal, request_id: str, scope: Scope
    ) -> ApprovalRequest:
        if request_id and not REQUEST_ID.match(request_id):
            raise InvalidArgument.of([FieldViolation("request_id", "1-128 of A-Z a-z 0-9 _ . : -")])
        async with self._uow() as uow:
            item = await self._load(uow, name)
            self._require_custody(item, scope)
            item.check_disposal(disposal)
            approval = await self._four_eyes.open(
                uow.approvals,
                action=DISPOSE_ACTION,
                resource=item.name,
                summary=f"dispose of {item.name} ({item.category.value}): "
                f"{item.decision.kind.value if item.decision else ''}",
                payload=_disposal_payload(disposal),
                requested_by=requester,
                beneficiary="",
                approver_roles=frozenset({Role.CUSTODY_SUPERVISOR}),
                request_id=request_id,
            )
            await uow.commit()
        return approval

    async def approve_disposal(self, name: str, approver: Principal) -> ApprovalRequest:
        async with self._uow() as uow:
            approval = await self._four_eyes.decide(
                uow.approvals, name, approver, approve=True, action=DISPOSE_ACTION
            )
            await uow.commit()
        return approval

    async def dispose(
        self, name: str, disposal: Disposal, approval_name: str, scope: Scope
    ) -> Item:
        async with self._uow() as uow:
            item = await self._load(uow, name)
            self._require_custody(item, scope)
            data = _disposal_payload(disposal)
            if item.needs_four_eyes():
                approval = await self._approved(uow, approval_name, item, disposal)
                data = {
                    **data,
                    "approval": approval.name,
                    "requested_by": approval.requested_by,
                    "approved_by": approval.decided_by,
                }
            outcome = item.dispose(disposal)
            data["outcome"] = outcome.value
            await self._apply(uow, [Change(item, "DISPOSED", data)], scope.actor, self._clock())
            await uow.commit()
        self._anchor([item])
        return item

    async def _approved(
        self, uow: UnitOfWork, approval_name: str, item: Item, disposal: Disposal
    ) -> ApprovalRequest:
        if not approval_name:
            raise FailedPrecondition(
                "APPROVAL_REQUIRED",
                "disposing of this item needs a CUSTODY_SUPERVISOR's approval (RequestDisposal)",
                metadata={"item": item.name},
            )
        approval = await self._four_eyes.get(uow.approvals, approval_name)
        now = self._clock()
        if approval.action != DISPOSE_ACTION or approval.resource != item.name:
            raise FailedPrecondition("APPROVAL_MISMATCH", "the approval is for something else")
        if approval.state_at(now) is not ApprovalState.APPROVED:
            raise FailedPrecondition(
                "APPROVAL_REQUIRED",
                f"the approval is {approval.state_at(now).value.lower()}, not approved",
                metadata={"approval": approval.name},
            )
        if now >= approval.expire_time:
            raise FailedPrecondition(
                "APPROVAL_EXPIRED", "the approval has expired", metadata={"approval": approval.name}
            )
        if dict(approval.payload) != _disposal_payload(disposal):
            raise FailedPrecondition(
                "APPROVAL_MISMATCH", "the disposal differs from the approved one"
            )
        return approval


def _disposal_payload(disposal: Disposal) -> dict[str, str]:
    return {
        "witness": disposal.witness,
        "method": disposal.method,
        "licence_reference": disposal.licence_reference,
        "proceeds": str(disposal.proceeds) if disposal.proceeds else "",
    }
