"""What partners send about reports, turned into ReportService calls (like api.py for gRPC).

The composition root registers these with the exchange's dispatcher.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from justice.exchange.inbound import Dispatcher, InboundMessage, Settlement, parse_payload
from justice.platform.errors import JusticeError
from justice.reports.service import (
    MESSAGE_TYPE_ACKNOWLEDGED,
    MESSAGE_TYPE_REJECTED,
    MESSAGE_TYPE_SUBMITTED,
    ReportService,
)
from justice.reports.v1 import reports_pb2 as pb

log = logging.getLogger(__name__)


class ReportInbound:
    def __init__(self, service: ReportService) -> None:
        self._service = service

    def register(self, dispatcher: Dispatcher) -> None:
        dispatcher.register(MESSAGE_TYPE_ACKNOWLEDGED, self.acknowledged)
        dispatcher.register(MESSAGE_TYPE_REJECTED, self.rejected)
        dispatcher.on_settled(MESSAGE_TYPE_SUBMITTED, self.settled)

    async def acknowledged(self, message: InboundMessage) -> None:
        answer = parse_payload(pb.ReportAcknowledgement, message.payload)
        await self._service.acknowledge(message.sender, answer.report, message.key)

    async def rejected(self, message: InboundMessage) -> None:
        answer = parse_payload(pb.ReportRejection, message.payload)
        await self._service.reject(
            message.sender, answer.report, answer.reason, answer.detail, message.key
        )

    async def settled(self, settlements: Sequence[Settlement]) -> None:
        # The receipt settles the deliveries whatever happens here; a version that cannot
        # move is only logged.
        accepted = [s for s in settlements if s.accepted]
        for partner in dict.fromkeys(s.partner for s in accepted):
            versions = [(s.subject_ref, s.key) for s in accepted if s.partner == partner]
            for _, error in await self._service.delivered(partner, versions):
                log.warning("report receipt not applied: %s", error.reason)
        for settlement in settlements:
            if settlement.accepted:
                continue
            try:
                await self._service.reject(
                    settlement.partner,
                    settlement.subject_ref,
                    settlement.reason or "REJECTED",
                    settlement.detail,
                    settlement.key,
                )
            except JusticeError as error:
                log.warning("report receipt not applied: %s", error.reason)
