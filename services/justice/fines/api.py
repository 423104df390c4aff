"""FineService servicer: proto in, domain call, proto out. No SQL, no rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import grpc

from justice.fines import messages
from justice.fines.messages import fine_to_proto, money_to_proto
from justice.fines.model import (
    Detection,
    FineState,
    Money,
    Offence,
    Speed,
    normalise_plate,
)
from justice.fines.ports import FineQuery
from justice.fines.service import FineService, PaymentResult
from justice.fines.v1 import fines_pb2 as pb
from justice.fines.v1 import fines_pb2_grpc
from justice.platform.errors import FieldViolation, InvalidArgument
from justice.platform.listing import next_token, page, parse_filter
from justice.platform.timestamps import moment

Context = grpc.aio.ServicerContext[Any, Any]


def detection_from_proto(fine: pb.Fine) -> Detection:
    offence = messages.offence_from_proto(fine.offence)
    speed = None
    if fine.HasField("speed"):
        speed = Speed(fine.speed.measured, fine.speed.corrected, fine.speed.allowed)
    return Detection(
        source=messages.source_from_proto(fine.detection_source),
        device_id=fine.device_id.strip(),
        offence_time=moment(fine, "offence_time", "fine.offence_time"),
        place=fine.place.strip(),
        offence_country=fine.offence_country.strip(),
        plate=normalise_plate(fine.plate),
        registration_country=fine.registration_country.strip(),
        vehicle_category=fine.vehicle_category.strip(),
        offence=offence,
        provision=fine.provision.strip(),
        speed=speed,
        evidence=tuple(fine.evidence),
    )


def _state(value: str) -> FineState:
    return FineState(value.upper())


def _offence(value: str) -> str:
    return Offence(value.upper()).value


def _time(value: str) -> datetime:
    moment_ = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment_.tzinfo is None:
        raise ValueError("give a time zone (RFC 3339)")
    return moment_


_FILTER_FIELDS: dict[str, Callable[[str], object]] = {
    "state": _state,
    "registration_country": str.upper,
    "plate": normalise_plate,
    "offence": _offence,
    "offence_after": _time,
    "offence_before": _time,
}


def _counts(counts: dict[str, tuple[int, Money]]) -> list[pb.FineCount]:
    return [
        pb.FineCount(key=key, count=count, amount=money_to_proto(amount))
        for key, (count, amount) in counts.items()
    ]


class FineApi(fines_pb2_grpc.FineServiceServicer):
    def __init__(self, service: FineService) -> None:
        self._service = service

    async def RegisterOffence(
        self, request: pb.RegisterOffenceRequest, context: Context
    ) -> pb.Fine:
        fine = await self._service.register(detection_from_proto(request.fine), request.request_id)
        return fine_to_proto(fine)

    async def GetFine(self, request: pb.GetFineRequest, context: Context) -> pb.Fine:
        return fine_to_proto(await self._service.get(request.name))

    async def ListFines(
        self, request: pb.ListFinesRequest, context: Context
    ) -> pb.ListFinesResponse:
        terms = parse_filter(request.filter, _FILTER_FIELDS)
        query = FineQuery(page=page(request.page_size, request.page_token), **terms)
        fines = await self._service.list(query)
        last = fines[-1].fine_id if len(fines) == query.page.size else None
        return pb.ListFinesResponse(
            fines=[fine_to_proto(f) for f in fines], next_page_token=next_token(last)
        )

    async def IssueNotice(self, request: pb.IssueNoticeRequest, context: Context) -> pb.Fine:
        return fine_to_proto(await self._service.issue_notice(request.name))

    async def DesignateDriver(
        self, request: pb.DesignateDriverRequest, context: Context
    ) -> pb.Fine:
        driver = messages.person_from_proto(request.driver, "driver", request.HasField("driver"))
        if driver is None:
            raise InvalidArgument.of([FieldViolation("driver", "required")])
        return fine_to_proto(await self._service.designate_driver(request.name, driver))

    async def RegisterPayment(
        self, request: pb.RegisterPaymentRequest, context: Context
    ) -> pb.RegisterPaymentResponse:
        money = messages.money_from_proto(request.amount, "amount")
        paid_time = moment(request, "paid_time")
        if paid_time is None:
            raise InvalidArgument.of([FieldViolation("paid_time", "required")])
        result = await self._service.register_payment(
            request.payment_id, request.payment_reference, money, paid_time
        )
        return payment_response(result)

    async def ContestFine(self, request: pb.ContestFineRequest, context: Context) -> pb.Fine:
        return fine_to_proto(await self._service.contest(request.name, request.grounds))

    async def DecideContest(self, request: pb.DecideContestRequest, context: Context) -> pb.Fine:
        return fine_to_proto(await self._service.decide_contest(request.name, request.upheld))

    async def GetFineStatistics(
        self, request: pb.GetFineStatisticsRequest, context: Context
    ) -> pb.FineStatistics:
        stats = await self._service.statistics()
        return pb.FineStatistics(
            by_state=_counts(stats.by_state),
            by_country=_counts(stats.by_country),
            by_offence=_counts(stats.by_offence),
            lookups_sent=stats.lookups_sent,
            lookups_failed=stats.lookups_failed,
            letters_sent=stats.letters_sent,
            collection_rate=str(stats.collection_rate),
        )

    async def ListLetters(
        self, request: pb.ListLettersRequest, context: Context
    ) -> pb.ListLettersResponse:
        letters = await self._service.letters(request.name)
        return pb.ListLettersResponse(
            letters=[
                pb.Letter(
                    seq=seq,
                    kind=pb.LetterKind.Value(f"LETTER_{letter.kind.name}"),
                    language=letter.language,
                    pdf=letter.pdf,
                    signed_xml=letter.signed_xml,
                )
                for seq, letter in enumerate(letters, start=1)
            ]
        )


def payment_response(result: PaymentResult) -> pb.RegisterPaymentResponse:
    fine = result.fine
    currency = result.refund.currency
    return pb.RegisterPaymentResponse(
        outcome=pb.PaymentOutcome.Value(result.outcome.value),
        fine=fine.name if fine else "",
        state=pb.FineState.Value(fine.state.value) if fine else pb.FINE_STATE_UNSPECIFIED,
        outstanding=money_to_proto(fine.outstanding if fine else Money(Decimal(0), currency)),
        refund=money_to_proto(result.refund),
    )
