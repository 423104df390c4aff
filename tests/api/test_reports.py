"""ReportService through a real grpc.aio server over mTLS, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import text

from justice.app import Application
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from tests.api.conftest import ChannelFactory, outbox_message
from tests.api.rich_status import rich_error
from tests.builders import PURPOSE, create, draft

Stub = reports_pb2_grpc.ReportServiceStub


async def count_rows(app: Application, table: str) -> int:
    async with app.database.engine.connect() as connection:
        query = text(f"SELECT count(*) FROM {table}")  # noqa: S608 - table names are ours
        return int((await connection.execute(query)).scalar_one())


async def test_create_is_idempotent_by_request_id(
    grpc_stub: Stub, application: Application
) -> None:
    request = pb.CreateReportRequest(report=draft(), request_id=str(uuid.uuid4()))
    first = await grpc_stub.CreateReport(request)
    before = await count_rows(application, "report_version")
    second = await grpc_stub.CreateReport(request)
    assert second.name == first.name
    assert await count_rows(application, "report_version") == before
    assert first.state == pb.DRAFT
    assert first.author == "officer-1001"
    assert first.version == 1
    assert first.persons[0].birth_date.year == 1990


async def test_bad_fields_get_field_violations_and_write_nothing(
    grpc_stub: Stub, application: Application
) -> None:
    before = await count_rows(application, "report_version")
    bad = draft(language="xx", narrative="x" * 100_001)
    bad.attachments.add(
        evidence="evidence/bodycam-1", sha256="not-a-hash", size_bytes=1, media_type="video/mp4"
    )
    bad.persons[0].birth_date.month = 13
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_stub.CreateReport(pb.CreateReportRequest(report=bad, request_id="r-bad"))
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.domain == "justice.reports.v1"
    assert "persons[0].birth_date" in error.fields
    bad.persons[0].birth_date.month = 4
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_stub.CreateReport(pb.CreateReportRequest(report=bad, request_id="r-bad"))
    error = rich_error(caught.value)
    assert error.reason == "INVALID_FIELDS"
    assert {"language", "narrative", "attachments[0].sha256"} <= set(error.fields)
    assert await count_rows(application, "report_version") == before


@pytest.mark.parametrize(
    ("name", "code", "reason"),
    [
        ("reports/doesnotexist", grpc.StatusCode.NOT_FOUND, "REPORT_NOT_FOUND"),
        ("reports/x@0", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELDS"),
        ("../etc/passwd", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELDS"),
        ("", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELDS"),
    ],
)
async def test_get_unknown_or_malformed_name(
    grpc_stub: Stub, name: str, code: grpc.StatusCode, reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_stub.GetReport(pb.GetReportRequest(name=name), metadata=PURPOSE)
    error = rich_error(caught.value)
    assert (error.code, error.reason) == (code, reason)


async def test_update_changes_drafts_only(grpc_stub: Stub) -> None:
    report = await create(grpc_stub)
    report.narrative = "Aangepaste vaststelling."
    report.place = "ignored: not in the mask"
    updated = await grpc_stub.UpdateReport(
        pb.UpdateReportRequest(report=report, update_mask=FieldMask(paths=["narrative"]))
    )
    assert updated.narrative == "Aangepaste vaststelling."
    assert updated.place == "Meir 1, 2000 Antwerpen"
    assert updated.etag != report.etag
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # stale etag
        await grpc_stub.UpdateReport(pb.UpdateReportRequest(report=report))
    assert rich_error(caught.value).reason == "ETAG_MISMATCH"
    await grpc_stub.SignReport(pb.SignReportRequest(name=report.name))
    updated.narrative = "Te laat."
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_stub.UpdateReport(pb.UpdateReportRequest(report=updated))
    error = rich_error(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REPORT_NOT_DRAFT")


async def test_only_the_author_signs_and_only_once(
    grpc_stub: Stub, other_officer_stub: Stub
) -> None:
    report = await create(grpc_stub)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await other_officer_stub.SignReport(pb.SignReportRequest(name=report.name))
    error = rich_error(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_AUTHOR")
    signed = await grpc_stub.SignReport(pb.SignReportRequest(name=report.name))
    assert signed.state == pb.SIGNED
    assert len(signed.signed_sha256) == 64
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_stub.SignReport(pb.SignReportRequest(name=report.name))
    error = rich_error(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_SIGNED")


async def test_incomplete_report_cannot_be_signed(grpc_stub: Stub) -> None:
    report = await create(grpc_stub, narrative="", offences=[])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_stub.SignReport(pb.SignReportRequest(name=report.name))
    error = rich_error(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REPORT_INCOMPLETE")
    assert {"narrative", "offences"} <= set(error.fields)
    again = await grpc_stub.GetReport(pb.GetReportRequest(name=report.name), metadata=PURPOSE)
    assert again.state == pb.DRAFT


async def test_export_is_stable_and_verifies(grpc_stub: Stub) -> None:
    report = await create(grpc_stub)
    signed = await grpc_stub.SignReport(pb.SignReportRequest(name=report.name))
    exported = await grpc_stub.ExportReport(
        pb.ExportReportRequest(name=report.name), metadata=PURPOSE
    )
    again = await grpc_stub.ExportReport(
        pb.ExportReportRequest(name=f"{report.name}@1"), metadata=PURPOSE
    )
    assert exported.signed_xml == again.signed_xml
    assert exported.filename == f"report-{report.name.split('/')[1]}-v1.xml"
    by_name = await grpc_stub.VerifyReport(pb.VerifyReportRequest(name=report.name))
    by_bytes = await grpc_stub.VerifyReport(pb.VerifyReportRequest(signed_xml=exported.signed_xml))
    for verdict in (by_name, by_bytes):
        assert verdict.integrity_ok, verdict.detail
        assert verdict.chains_to_platform_ca
        assert verdict.report == report.name
        assert verdict.version == 1
        assert "officer-1001" in verdict.signer_subject
        assert abs(verdict.signing_time.ToSeconds() - signed.sign_time.ToSeconds()) < 2


async def test_flipped_narrative_byte_fails_verification(grpc_stub: Stub) -> None:
    report = await create(grpc_stub, narrative="De fiets was blauw.")
    await grpc_stub.SignReport(pb.SignReportRequest(name=report.name))
    exported = await grpc_stub.ExportReport(
        pb.ExportReportRequest(name=report.name), metadata=PURPOSE
    )
    tampered = exported.signed_xml.replace(b"blauw", b"blaux")
    assert tampered != exported.signed_xml
    verdict = await grpc_stub.VerifyReport(pb.VerifyReportRequest(signed_xml=tampered))
    assert not verdict.integrity_ok
    assert verdict.reason == "DIGEST_MISMATCH"
    assert verdict.report == ""


async def test_amendment_supersedes_and_keeps_history(grpc_stub: Stub) -> None:
    report = await create(grpc_stub)
    await grpc_stub.SignReport(pb.SignReportRequest(name=report.name))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_stub.AmendReport(pb.AmendReportRequest(name=f"{report.name}@7"))
    assert rich_error(caught.value).reason == "NOT_LATEST_VERSION"
    amendment = await grpc_stub.AmendReport(
        pb.AmendReportRequest(name=report.name, request_id="a1")
    )
    assert (amendment.version, amendment.amends_version, amendment.state) == (2, 1, pb.DRAFT)
    retried = await grpc_stub.AmendReport(pb.AmendReportRequest(name=report.name, request_id="a1"))
    assert retried.version == 2
    amendment.narrative = "Aanvulling: de dader droeg een rode jas."
    await grpc_stub.UpdateReport(pb.UpdateReportRequest(report=amendment))
    v2 = await grpc_stub.SignReport(pb.SignReportRequest(name=report.name))
    assert (v2.version, v2.state) == (2, pb.SIGNED)
    v1 = await grpc_stub.GetReport(pb.GetReportRequest(name=f"{report.name}@1"), metadata=PURPOSE)
    assert v1.state == pb.SUPERSEDED
    assert v1.narrative == report.narrative
    v1_xml = await grpc_stub.ExportReport(
        pb.ExportReportRequest(name=f"{report.name}@1"), metadata=PURPOSE
    )
    v2_xml = await grpc_stub.ExportReport(
        pb.ExportReportRequest(name=f"{report.name}@2"), metadata=PURPOSE
    )
    assert b"rode jas" in v2_xml.signed_xml
    assert b"rode jas" not in v1_xml.signed_xml
    verdict = await grpc_stub.VerifyReport(pb.VerifyReportRequest(signed_xml=v2_xml.signed_xml))
    assert (verdict.integrity_ok, verdict.version) == (True, 2)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_stub.SubmitReport(pb.SubmitReportRequest(name=f"{report.name}@1"))
    assert rich_error(caught.value).reason == "ILLEGAL_TRANSITION"


async def test_submit_writes_the_outbox_row_in_the_same_transaction(
    grpc_stub: Stub, application: Application
) -> None:
    report = await create(grpc_stub)
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # a draft cannot be submitted
        await grpc_stub.SubmitReport(pb.SubmitReportRequest(name=report.name))
    assert rich_error(caught.value).code == grpc.StatusCode.FAILED_PRECONDITION
    await grpc_stub.SignReport(pb.SignReportRequest(name=report.name))
    before = await count_rows(application, "exchange_outbox")
    submitted = await grpc_stub.SubmitReport(
        pb.SubmitReportRequest(name=report.name, recipient="prosecutor-antwerp")
    )
    assert submitted.state == pb.SUBMITTED
    row = await outbox_message(application, f"{report.name}@1")
    assert row.subject == "justice.v1.partner.prosecutor-antwerp.inbox.report_submitted"
    exported = await grpc_stub.ExportReport(
        pb.ExportReportRequest(name=report.name), metadata=PURPOSE
    )
    assert bytes(row.payload) == exported.signed_xml
    assert await count_rows(application, "exchange_outbox") == before + 1


async def test_concurrent_submissions_of_one_version_write_one_message(
    grpc_stub: Stub, application: Application
) -> None:
    report = await create(grpc_stub)
    await grpc_stub.SignReport(pb.SignReportRequest(name=report.name))
    before = await count_rows(application, "exchange_outbox")
    # Both read the signed version; its revision lets only one change it.
    outcomes = await asyncio.gather(
        *(grpc_stub.SubmitReport(pb.SubmitReportRequest(name=report.name)) for _ in range(4)),
        return_exceptions=True,
    )
    answered = [o for o in outcomes if isinstance(o, pb.Report)]
    refused = [rich_error(o).code for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(answered) == 1
    assert answered[0].state == pb.SUBMITTED
    assert set(refused) <= {grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION}
    assert len(refused) == 3
    assert await count_rows(application, "exchange_outbox") == before + 1


async def test_list_filters_and_pages(grpc_stub: Stub) -> None:
    case = f"LIST.{uuid.uuid4().hex[:8]}"
    names = [(await create(grpc_stub, case_number=case)).name for _ in range(5)]
    await grpc_stub.SignReport(pb.SignReportRequest(name=names[0]))
    seen: list[str] = []
    token = ""
    while True:
        page = await grpc_stub.ListReports(
            pb.ListReportsRequest(page_size=2, page_token=token, filter=f'case_number = "{case}"'),
            metadata=PURPOSE,
        )
        seen += [r.name for r in page.reports]
        token = page.next_page_token
        if not token:
            break
    assert seen == names
    signed = await grpc_stub.ListReports(
        pb.ListReportsRequest(filter=f'case_number = "{case}" AND state = SIGNED'), metadata=PURPOSE
    )
    assert [r.name for r in signed.reports] == names[:1]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_stub.ListReports(
            pb.ListReportsRequest(filter="narrative ~ 'x'"), metadata=PURPOSE
        )
    assert rich_error(caught.value).fields.keys() == {"filter"}


@pytest.mark.parametrize("case_number", ["CASE\x00", "", "x" * 65])
async def test_check_case_refuses_a_malformed_case_number(
    grpc_create_channel: ChannelFactory, case_number: str
) -> None:
    # A NUL byte reached PostgreSQL (which cannot store it) and came back as INTERNAL.
    channel = grpc_create_channel(principal="justice-server")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await Stub(channel).CheckCase(pb.CheckCaseRequest(case_number=case_number))
    finally:
        await channel.close()
    error = rich_error(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELDS")
    assert error.fields.keys() == {"case_number"}


async def test_a_nul_character_in_any_text_field_is_refused_before_the_handler(
    grpc_stub: Stub, application: Application
) -> None:
    # PostgreSQL cannot store NUL: without this check the query failed and the call ended
    # INTERNAL (hypothesis found it in GetLocation, CheckCase). The path names the field.
    before = await count_rows(application, "report_version")
    report = draft()
    report.persons[0].family_name = "Jans\x00sens"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_stub.CreateReport(pb.CreateReportRequest(report=report, request_id="nul"))
    error = rich_error(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELDS")
    assert error.fields.keys() == {"report.persons[0].family_name"}
    assert await count_rows(application, "report_version") == before
