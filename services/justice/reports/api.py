"""ReportService servicer: proto in, domain call, proto out. No SQL, no rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any, Protocol

import grpc
from google.type import date_pb2

from justice.platform.errors import FieldViolation, InvalidArgument, NotFound
from justice.platform.listing import next_token, page, parse_filter
from justice.platform.timestamps import moment, timestamp
from justice.reports.lookup import ReportLookup
from justice.reports.model import (
    Attachment,
    Content,
    Offence,
    Person,
    PersonRole,
    ReportQuery,
    ReportState,
    ReportVersion,
)
from justice.reports.service import ReportScope, ReportService, Verification
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from justice.security.identity import current_principal
from justice.security.rules import Condition, current_access

Context = grpc.aio.ServicerContext[Any, Any]


def _date(value: date_pb2.Date, field: str, present: bool) -> date | None:
    if not present:
        return None
    try:
        return date(value.year, value.month, value.day)
    except ValueError:
        raise InvalidArgument.of([FieldViolation(field, "not a valid calendar date")]) from None


def _role(value: int, field: str) -> PersonRole | None:
    if value == pb.PERSON_ROLE_UNSPECIFIED:
        return None
    try:
        return PersonRole[pb.PersonRole.Name(pb.PersonRole.ValueType(value))]
    except (ValueError, KeyError):
        raise InvalidArgument.of([FieldViolation(field, "unknown role")]) from None


def content_from_proto(report: pb.Report) -> Content:
    persons = []
    for i, p in enumerate(report.persons):
        persons.append(
            Person(
                role=_role(p.role, f"persons[{i}].role"),
                given_name=p.given_name,
                family_name=p.family_name,
                birth_date=_date(
                    p.birth_date, f"persons[{i}].birth_date", p.HasField("birth_date")
                ),
                national_id=p.national_id,
            )
        )
    return Content(
        case_number=report.case_number,
        reporting_unit=report.reporting_unit,
        offences=tuple(Offence(o.code, o.article, o.description) for o in report.offences),
        place=report.place,
        facts_time=moment(report, "facts_time"),
        persons=tuple(persons),
        language=report.language,
        narrative=report.narrative,
        attachments=tuple(
            Attachment(a.evidence, a.sha256, a.size_bytes, a.media_type) for a in report.attachments
        ),
    )


def report_to_proto(report: ReportVersion) -> pb.Report:
    c = report.content
    return pb.Report(
        name=report.name,
        version=report.version,
        amends_version=report.amends_version,
        state=pb.ReportState.Value(report.state.value),
        case_number=c.case_number,
        reporting_unit=c.reporting_unit,
        author=report.author,
        offences=[
            pb.Offence(code=o.code, article=o.article, description=o.description)
            for o in c.offences
        ],
        place=c.place,
        facts_time=timestamp(c.facts_time),
        written_time=timestamp(report.written_time),
        persons=[
            pb.Person(
                role=pb.PersonRole.Value(p.role.value) if p.role else pb.PERSON_ROLE_UNSPECIFIED,
                given_name=p.given_name,
                family_name=p.family_name,
                birth_date=date_pb2.Date(
                    year=p.birth_date.year, month=p.birth_date.month, day=p.birth_date.day
                )
                if p.birth_date
                else None,
                national_id=p.national_id,
            )
            for p in c.persons
        ],
        language=c.language,
        narrative=c.narrative,
        attachments=[
            pb.Attachment(
                evidence=a.evidence,
                sha256=a.sha256,
                size_bytes=a.size_bytes,
                media_type=a.media_type,
            )
            for a in c.attachments
        ],
        create_time=timestamp(report.create_time),
        update_time=timestamp(report.update_time),
        sign_time=timestamp(report.sign_time),
        signed_sha256=report.signed_sha256,
        etag=str(report.revision),
        recipient=report.recipient,
        rejection_reason=report.rejection_reason,
    )


def verification_to_proto(result: Verification) -> pb.VerifyReportResponse:
    return pb.VerifyReportResponse(
        integrity_ok=result.integrity_ok,
        reason=result.reason,
        detail=result.detail,
        signer_subject=result.signer_subject,
        signing_time=timestamp(result.signing_time),
        chains_to_platform_ca=result.chains_to_ca,
        report=result.report,
        version=result.version,
    )


def _state(value: str) -> ReportState:
    return ReportState(value.upper())


_FILTER_FIELDS: dict[str, Callable[[str], object]] = {
    "case_number": str,
    "author": str,
    "state": _state,
}


def report_scope() -> ReportScope | None:
    """The authorisation conditions of this call as a report scope (None: sees all)."""
    access = current_access()
    if access.conditions is None:
        return None
    principal = access.principal
    conditions = access.conditions
    mine = Condition.OWN_UNIT in conditions or Condition.AUTHOR in conditions
    return ReportScope(
        author=principal.id if mine else None,
        unit=(principal.unit_name or None) if Condition.OWN_UNIT in conditions else None,
        office=(principal.partner or None) if Condition.SUBMITTED_TO_OFFICE in conditions else None,
    )


class DeliveryReceipts(Protocol):
    """Partners' signed receipts for the deliveries about a report version, serialized as
    justice.exchange.v1.DeliveryReceipt (the exchange owns them; this API only bundles)."""

    async def about(self, subject_ref: str) -> list[bytes]: ...


# How many GetReport answers are kept, built, for the next reader.
_SHOWN_MESSAGES = 4_096


class ReportApi(reports_pb2_grpc.ReportServiceServicer):
    def __init__(
        self, service: ReportService, lookup: ReportLookup, receipts: DeliveryReceipts | None = None
    ) -> None:
        self._service = service
        # What the internal CheckCase and DescribeReport (peer services) answer from.
        self._lookup = lookup
        self._receipts = receipts
        self._shown: dict[tuple[str, int, int], pb.Report] = {}

    async def CreateReport(self, request: pb.CreateReportRequest, context: Context) -> pb.Report:
        principal = current_principal()
        content = content_from_proto(request.report)
        if not content.reporting_unit:
            content = replace(content, reporting_unit=principal.unit_name or principal.unit)
        report = await self._service.create(principal.id, content, request.request_id)
        return report_to_proto(report)

    async def UpdateReport(self, request: pb.UpdateReportRequest, context: Context) -> pb.Report:
        current = await self._service.get(request.report.name, report_scope())
        incoming = content_from_proto(request.report)
        paths = set(request.update_mask.paths)
        unknown = paths - set(Content.__dataclass_fields__)
        if unknown:
            raise InvalidArgument.of(
                [FieldViolation("update_mask", f"not editable: {', '.join(sorted(unknown))}")]
            )
        if paths:
            incoming = replace(current.content, **{k: getattr(incoming, k) for k in paths})
        report = await self._service.update(
            current_principal().id, request.report.name, incoming, request.report.etag
        )
        return report_to_proto(report)

    async def GetReport(self, request: pb.GetReportRequest, context: Context) -> pb.Report:
        report = await self._service.show(request.name, report_scope())
        # (report, version, revision) names one content, so its message is built once; the
        # server only serialises what it is given.
        key = (report.report_id, report.version, report.revision)
        shown = self._shown.get(key)
        if shown is None:
            shown = self._shown[key] = report_to_proto(report)
            if len(self._shown) > _SHOWN_MESSAGES:
                del self._shown[next(iter(self._shown))]  # the oldest
        return shown

    async def ListReports(
        self, request: pb.ListReportsRequest, context: Context
    ) -> pb.ListReportsResponse:
        terms = parse_filter(request.filter, _FILTER_FIELDS)
        query = ReportQuery(page=page(request.page_size, request.page_token), **terms)
        reports = await self._service.list(query, report_scope())
        last = reports[-1].report_id if len(reports) == query.page.size else None
        return pb.ListReportsResponse(
            reports=[report_to_proto(r) for r in reports], next_page_token=next_token(last)
        )

    async def SignReport(self, request: pb.SignReportRequest, context: Context) -> pb.Report:
        return report_to_proto(await self._service.sign(current_principal().id, request.name))

    async def AmendReport(self, request: pb.AmendReportRequest, context: Context) -> pb.Report:
        report = await self._service.amend(current_principal().id, request.name, request.request_id)
        return report_to_proto(report)

    async def VerifyReport(
        self, request: pb.VerifyReportRequest, context: Context
    ) -> pb.VerifyReportResponse:
        source = request.WhichOneof("source")
        if source == "name":
            return verification_to_proto(
                await self._service.verify_stored(request.name, report_scope())
            )
        if source == "signed_xml":
            return verification_to_proto(self._service.verify_xml(request.signed_xml))
        raise InvalidArgument.of([FieldViolation("source", "give a name or signed_xml")])

    async def ExportReport(
        self, request: pb.ExportReportRequest, context: Context
    ) -> pb.ExportReportResponse:
        report = await self._service.export(request.name, report_scope())
        receipts: list[bytes] = []
        if request.include_receipts and self._receipts is not None:
            receipts = await self._receipts.about(f"reports/{report.report_id}@{report.version}")
        return pb.ExportReportResponse(
            signed_xml=report.signed_xml or b"",
            filename=f"report-{report.report_id}-v{report.version}.xml",
            delivery_receipts=receipts,
        )

    async def SubmitReport(self, request: pb.SubmitReportRequest, context: Context) -> pb.Report:
        report = await self._service.submit(current_principal().id, request.name, request.recipient)
        return report_to_proto(report)

    async def CheckCase(
        self, request: pb.CheckCaseRequest, context: Context
    ) -> pb.CheckCaseResponse:
        return pb.CheckCaseResponse(known=await self._lookup.case_known(request.case_number))

    async def DescribeReport(
        self, request: pb.DescribeReportRequest, context: Context
    ) -> pb.ReportFacts:
        found = await self._lookup.get(request.name)
        if found is None:
            raise NotFound(
                "REPORT_NOT_FOUND", f"no {request.name}", metadata={"name": request.name}
            )
        return pb.ReportFacts(
            name=request.name,
            case_number=found.content.case_number,
            recipient=found.recipient,
            reporting_unit=found.content.reporting_unit,
        )
