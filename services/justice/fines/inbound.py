"""What partners send about fines, turned into FineService calls (like api.py for gRPC):
vehicle registers' owner replies, payment providers' payments, executing states' results.

The composition root registers these with the exchange's dispatcher.
"""

from __future__ import annotations

from justice.exchange.inbound import Dispatcher, InboundMessage, parse_payload
from justice.fines import messages
from justice.fines.model import TransferOutcome
from justice.fines.service import (
    MESSAGE_TYPE_LOOKUP_REPLY,
    MESSAGE_TYPE_PAYMENT,
    MESSAGE_TYPE_TRANSFER_RESULT,
    FineService,
    OwnerAnswer,
)
from justice.fines.v1 import fines_pb2 as pb
from justice.platform.errors import FieldViolation, InvalidArgument
from justice.platform.timestamps import moment

_OUTCOMES = {
    pb.OUTCOME_EXECUTED: TransferOutcome.EXECUTED,
    pb.OUTCOME_REFUSED: TransferOutcome.REFUSED,
    pb.OUTCOME_PARTIALLY_EXECUTED: TransferOutcome.PARTIALLY_EXECUTED,
}


class FineInbound:
    def __init__(self, service: FineService) -> None:
        self._service = service

    def register(self, dispatcher: Dispatcher) -> None:
        dispatcher.register(MESSAGE_TYPE_LOOKUP_REPLY, self.owner_reply)
        dispatcher.register(MESSAGE_TYPE_PAYMENT, self.payment)
        dispatcher.register(MESSAGE_TYPE_TRANSFER_RESULT, self.transfer_result)

    async def owner_reply(self, message: InboundMessage) -> None:
        reply = parse_payload(pb.OwnerLookupReply, message.payload)
        answer = OwnerAnswer(
            lookup_id=reply.lookup_id,
            not_found=reply.not_found,
            refusal=reply.refusal,
            vehicle=messages.vehicle_from_proto(reply.vehicle)
            if reply.HasField("vehicle")
            else None,
            holder=messages.person_from_proto(reply.holder, "holder", reply.HasField("holder")),
            owner=messages.person_from_proto(reply.owner, "owner", reply.HasField("owner")),
            end_user=messages.person_from_proto(
                reply.end_user, "end_user", reply.HasField("end_user")
            ),
        )
        await self._service.owner_answered(answer, message.key)

    async def payment(self, message: InboundMessage) -> None:
        payment = parse_payload(pb.PaymentNotification, message.payload)
        paid_time = moment(payment, "paid_time") or message.created_at
        await self._service.register_payment(
            payment.payment_id,
            payment.payment_reference,
            messages.money_from_proto(payment.amount, "amount"),
            paid_time,
            message.key,
        )

    async def transfer_result(self, message: InboundMessage) -> None:
        result = parse_payload(pb.TransferResult, message.payload)
        if result.outcome not in _OUTCOMES:
            raise InvalidArgument.of([FieldViolation("outcome", "executed, refused or partial")])
        collected = (
            messages.money_from_proto(result.collected, "collected")
            if result.HasField("collected")
            else None
        )
        await self._service.transfer_result(
            message.sender,
            result.fine,
            _OUTCOMES[result.outcome],
            collected,
            message.key,
        )
