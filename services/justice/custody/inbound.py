"""What the prosecutor sends about seized items, turned into the same service call as the API.

The composition root registers these with the exchange's dispatcher. A decision applies once
per (item, reference), whichever route brought it and however often it was delivered.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from justice.custody.api import decision
from justice.custody.disposition import DispositionService
from justice.custody.ledger import MESSAGE_TYPE_DECISION
from justice.custody.v1 import custody_pb2 as pb
from justice.exchange.inbound import Dispatcher, InboundMessage
from justice.platform.errors import FieldViolation, InvalidArgument


class CustodyInbound:
    def __init__(self, dispositions: DispositionService) -> None:
        self._dispositions = dispositions

    def register(self, dispatcher: Dispatcher) -> None:
        dispatcher.register(MESSAGE_TYPE_DECISION, self.decided)

    async def decided(self, message: InboundMessage) -> None:
        body = pb.CustodyDecisionMessage()
        try:
            body.ParseFromString(message.payload)
        except DecodeError:
            raise InvalidArgument.of(
                [FieldViolation("payload", "not a justice.custody.v1.CustodyDecisionMessage")]
            ) from None
        found = decision(body.decision, body.reference, body.decision_date, body.authority)
        # The sender is the prosecutor partner as the exchange verified it.
        await self._dispositions.record_decision(message.sender, body.item, found)
