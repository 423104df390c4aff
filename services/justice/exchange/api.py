"""ExchangeService servicer: proto in, domain call, proto out. No SQL, no NATS, no rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc

from justice.exchange.model import (
    DeadLetter,
    Delivery,
    DeliveryState,
    Direction,
    KeptReceipt,
    Partner,
    PartnerKind,
)
from justice.exchange.service import ExchangeService, partner_id_of
from justice.exchange.store import DeadLetterQuery, DeliveryQuery
from justice.exchange.v1 import exchange_pb2 as pb
from justice.exchange.v1 import exchange_pb2_grpc
from justice.platform.errors import FieldViolation, InvalidArgument, PermissionDenied
from justice.platform.listing import next_token, page, parse_filter
from justice.platform.timestamps import timestamp
from justice.security.rules import Condition, current_access

Context = grpc.aio.ServicerContext[Any, Any]
# The partner id the caller is limited to (a partner agency), or None for no limit.
Scope = Callable[[], str | None]


def partner_to_proto(partner: Partner) -> pb.Partner:
    return pb.Partner(
        name=partner.name,
        kind=pb.PartnerKind.Value(partner.kind.value),
        country=partner.country,
        signing_certificate_pem=partner.certificate_pem,
        send_types=sorted(partner.send_types),
        receive_types=sorted(partner.receive_types),
        nats_user=partner.nats_user,
        create_time=timestamp(partner.create_time),
        update_time=timestamp(partner.update_time),
    )


def partner_from_proto(partner_id: str, message: pb.Partner) -> Partner:
    if message.kind == pb.PARTNER_KIND_UNSPECIFIED:
        raise InvalidArgument.of([FieldViolation("partner.kind", "required")])
    try:
        kind = PartnerKind[pb.PartnerKind.Name(message.kind)]
    except (ValueError, KeyError):
        raise InvalidArgument.of([FieldViolation("partner.kind", "unknown kind")]) from None
    epoch = datetime.fromtimestamp(0, UTC)
    return Partner(
        id=partner_id,
        kind=kind,
        country=message.country,
        certificate_pem=message.signing_certificate_pem,
        send_types=frozenset(message.send_types),
        receive_types=frozenset(message.receive_types),
        create_time=epoch,
        update_time=epoch,
    )


def delivery_to_proto(delivery: Delivery) -> pb.Delivery:
    return pb.Delivery(
        name=delivery.name,
        recipient=delivery.recipient,
        message_type=delivery.message_type,
        subject_ref=delivery.subject_ref,
        state=pb.DeliveryState.Value(delivery.state.value),
        reason=delivery.reason,
        detail=delivery.detail,
        attempts=delivery.attempts,
        create_time=timestamp(delivery.create_time),
        publish_time=timestamp(delivery.publish_time),
        settle_time=timestamp(delivery.settle_time),
        deadline=timestamp(delivery.deadline),
        receipt=delivery.receipt,
    )


def dead_letter_to_proto(letter: DeadLetter) -> pb.DeadLetter:
    return pb.DeadLetter(
        name=letter.name,
        direction=pb.Direction.Value(letter.direction.value),
        envelope_id=letter.envelope_id,
        partner=letter.partner,
        message_type=letter.message_type,
        reason=letter.reason,
        detail=letter.detail,
        create_time=timestamp(letter.create_time),
        resolve_time=timestamp(letter.resolve_time),
    )


def _upper(kind: type[DeliveryState] | type[Direction]) -> Callable[[str], Any]:
    def convert(value: str) -> Any:
        try:
            return kind(value.upper())
        except ValueError:
            raise ValueError(f"one of {', '.join(m.value for m in kind)}") from None

    return convert


_DELIVERY_FILTER: dict[str, Callable[[str], object]] = {
    "recipient": str,
    "state": _upper(DeliveryState),
    "message_type": str,
}
_DEAD_LETTER_FILTER: dict[str, Callable[[str], object]] = {
    "partner": str,
    "direction": _upper(Direction),
    "reason": str,
}


class ExchangeApi(exchange_pb2_grpc.ExchangeServiceServicer):
    def __init__(self, service: ExchangeService, scope: Scope) -> None:
        self._service = service
        self._scope = scope

    async def CreatePartner(self, request: pb.CreatePartnerRequest, context: Context) -> pb.Partner:
        partner = partner_from_proto(request.partner_id, request.partner)
        return partner_to_proto(await self._service.create_partner(partner))

    async def GetPartner(self, request: pb.GetPartnerRequest, context: Context) -> pb.Partner:
        return partner_to_proto(await self._service.get_partner(request.name))

    async def ListPartners(
        self, request: pb.ListPartnersRequest, context: Context
    ) -> pb.ListPartnersResponse:
        window = page(request.page_size, request.page_token)
        partners = await self._service.list_partners(window.size, window.after)
        last = partners[-1].id if len(partners) == window.size else None
        return pb.ListPartnersResponse(
            partners=[partner_to_proto(p) for p in partners], next_page_token=next_token(last)
        )

    async def UpdatePartner(self, request: pb.UpdatePartnerRequest, context: Context) -> pb.Partner:
        partner_id = partner_id_of(request.partner.name, "partner.name")
        changed = partner_from_proto(partner_id, request.partner)
        return partner_to_proto(await self._service.update_partner(changed))

    async def DeletePartner(
        self, request: pb.DeletePartnerRequest, context: Context
    ) -> pb.DeletePartnerResponse:
        await self._service.delete_partner(request.name)
        return pb.DeletePartnerResponse()

    async def ListDeliveries(
        self, request: pb.ListDeliveriesRequest, context: Context
    ) -> pb.ListDeliveriesResponse:
        terms = parse_filter(request.filter, _DELIVERY_FILTER)
        scope = self._scope()
        if scope is not None:
            if terms.get("recipient", scope) != scope:
                # Asking for another partner's deliveries yields nothing, like absent ones.
                return pb.ListDeliveriesResponse()
            terms["recipient"] = scope
        window = page(request.page_size, request.page_token)
        query = DeliveryQuery(size=window.size, after=window.after, **terms)
        deliveries = await self._service.list_deliveries(query)
        last = deliveries[-1].id if len(deliveries) == window.size else None
        return pb.ListDeliveriesResponse(
            deliveries=[delivery_to_proto(d) for d in deliveries], next_page_token=next_token(last)
        )

    async def GetDelivery(self, request: pb.GetDeliveryRequest, context: Context) -> pb.Delivery:
        return delivery_to_proto(await self._service.get_delivery(request.name, self._scope()))

    async def GetDeliveryReceipt(
        self, request: pb.GetDeliveryReceiptRequest, context: Context
    ) -> pb.DeliveryReceipt:
        return receipt_to_proto(await self._service.delivery_receipt(request.name, self._scope()))

    async def RedeliverDelivery(
        self, request: pb.RedeliverDeliveryRequest, context: Context
    ) -> pb.Delivery:
        return delivery_to_proto(await self._service.redeliver(request.name))

    async def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: Context
    ) -> pb.ListDeadLettersResponse:
        terms = parse_filter(request.filter, _DEAD_LETTER_FILTER)
        window = page(request.page_size, request.page_token)
        query = DeadLetterQuery(size=window.size, after=window.after, **terms)
        letters = await self._service.list_dead_letters(query)
        last = letters[-1].id if len(letters) == window.size else None
        return pb.ListDeadLettersResponse(
            dead_letters=[dead_letter_to_proto(x) for x in letters],
            next_page_token=next_token(last),
        )

    async def GetRelayStatus(
        self, request: pb.GetRelayStatusRequest, context: Context
    ) -> pb.RelayStatus:
        status = await self._service.relay_status()
        return pb.RelayStatus(
            backlog=status.backlog,
            awaiting_receipt=status.awaiting_receipt,
            dead_letters=status.dead_letters,
            oldest_pending_time=timestamp(status.oldest_pending),
        )


def receipt_to_proto(kept: KeptReceipt) -> pb.DeliveryReceipt:
    return pb.DeliveryReceipt(
        name=kept.name,
        partner=kept.partner,
        envelope=kept.envelope,
        signing_certificate_pem=kept.certificate_pem,
        receive_time=timestamp(kept.receive_time),
    )


class ReceiptBundle:
    """Kept receipts about a domain object, serialized as DeliveryReceipt: what an export
    bundles next to the document (the composition root hands it to ReportApi)."""

    def __init__(self, service: ExchangeService) -> None:
        self._service = service

    async def about(self, subject_ref: str) -> list[bytes]:
        kept = await self._service.receipts_about(subject_ref)
        return [receipt_to_proto(receipt).SerializeToString() for receipt in kept]


def own_deliveries_scope() -> str | None:
    """The partner the caller is limited to, from the authorisation decision (rules.py)."""
    access = current_access()
    if access.unrestricted:
        return None
    if access.allows(Condition.OWN_DELIVERIES) and access.principal.partner:
        return access.principal.partner
    raise PermissionDenied(
        "NOT_A_PARTNER", "only a partner agency's own deliveries can be shown to it"
    )
