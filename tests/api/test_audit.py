"""AuditService and the audit interceptor through the real server (mTLS, SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from cryptography import x509
from lxml import etree

from justice.app import Application
from justice.audit import bundle
from justice.audit.personal_data import PURPOSE_HEADER
from justice.audit.v1 import audit_pb2 as apb
from justice.audit.v1 import audit_pb2_grpc
from justice.devstack.pki import DevPki
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from justice.signing.xades import XadesVerifier
from tests.api.conftest import ChannelFactory
from tests.api.rich_status import rich_error
from tests.builders import create


def assert_status(error: grpc.aio.AioRpcError, code: grpc.StatusCode, reason: str) -> None:
    details = rich_error(error)
    assert (details.code, details.reason) == (code, reason), details


PURPOSE = ((PURPOSE_HEADER, "investigation PV/2025/0042"),)
REPORTS = "justice.reports.v1.ReportService"
AUDITOR = "auditor-4001"
# Personal data the audit trail must never carry (with the draft's suspect, Piet Janssens).
SECRET_NARRATIVE = "Geheime vaststelling over Jan Janssens."


@pytest.fixture(scope="module")
async def audit_stub(
    grpc_create_channel: ChannelFactory,
) -> AsyncIterator[audit_pb2_grpc.AuditServiceStub]:
    channel = grpc_create_channel(principal=AUDITOR)
    yield audit_pb2_grpc.AuditServiceStub(channel)
    await channel.close()


async def _records_for(
    audit_stub: audit_pb2_grpc.AuditServiceStub, resource: str
) -> list[apb.AuditRecord]:
    response = await audit_stub.QueryAccess(
        apb.QueryAccessRequest(resource=resource), metadata=PURPOSE
    )
    return list(response.records)


async def test_personal_data_read_without_purpose_is_refused_and_audited(
    grpc_stub: reports_pb2_grpc.ReportServiceStub, audit_stub: audit_pb2_grpc.AuditServiceStub
) -> None:
    report = await create(grpc_stub, narrative=SECRET_NARRATIVE)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await grpc_stub.GetReport(pb.GetReportRequest(name=report.name))
    assert_status(refused.value, grpc.StatusCode.FAILED_PRECONDITION, "PURPOSE_REQUIRED")

    read = await grpc_stub.GetReport(pb.GetReportRequest(name=report.name), metadata=PURPOSE)
    assert read.name == report.name

    records = await _records_for(audit_stub, report.name)
    gets = [r for r in records if r.method == "GetReport"]
    assert [(r.outcome, r.reason, r.purpose) for r in gets] == [
        ("FAILED_PRECONDITION", "PURPOSE_REQUIRED", ""),
        ("OK", "", "investigation PV/2025/0042"),
    ]
    for record in gets:
        assert (record.principal, record.agency) == ("officer-1001", "Federal Police")
        assert record.unit
        assert record.service == REPORTS
        assert list(record.resources) == [report.name]
        assert record.peer.startswith(("ipv4:", "ipv6:"))
        assert len(record.hash) == 64


async def test_writes_are_audited_by_resource_and_never_carry_payloads(
    grpc_stub: reports_pb2_grpc.ReportServiceStub,
    audit_stub: audit_pb2_grpc.AuditServiceStub,
    application: Application,
) -> None:
    report = await create(grpc_stub, narrative=SECRET_NARRATIVE)
    update = pb.Report(name=report.name, narrative="Nieuwe tekst over Piet Pieters.")
    await grpc_stub.UpdateReport(pb.UpdateReportRequest(report=update))
    records = await _records_for(audit_stub, report.name)
    assert [r.method for r in records] == ["UpdateReport"]
    exported = await audit_stub.ExportAudit(apb.ExportAuditRequest(), metadata=PURPOSE)
    for secret in (b"Janssens", b"Piet Pieters", b"Geheime"):
        assert secret not in exported.signed_xml


async def test_malformed_purpose_is_invalid_argument(
    grpc_stub: reports_pb2_grpc.ReportServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await grpc_stub.GetReport(
            pb.GetReportRequest(name="reports/x"), metadata=((PURPOSE_HEADER, "x; drop table"),)
        )
    assert_status(refused.value, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELDS")


async def test_auditors_are_audited(audit_stub: audit_pb2_grpc.AuditServiceStub) -> None:
    await audit_stub.QueryAccess(apb.QueryAccessRequest(principal="officer-1002"), metadata=PURPOSE)
    mine = await audit_stub.QueryAccess(apb.QueryAccessRequest(principal=AUDITOR), metadata=PURPOSE)
    queries = [r for r in mine.records if r.method == "QueryAccess"]
    assert "principals/officer-1002" in [res for r in queries for res in r.resources]
    assert all(r.purpose == "investigation PV/2025/0042" for r in queries)


async def test_query_access_needs_exactly_one_subject(
    audit_stub: audit_pb2_grpc.AuditServiceStub,
) -> None:
    for request in (
        apb.QueryAccessRequest(),
        apb.QueryAccessRequest(resource="reports/x", principal="officer-1001"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await audit_stub.QueryAccess(request, metadata=PURPOSE)
        assert_status(refused.value, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELDS")


async def test_query_access_pages_and_filters_by_time(
    grpc_stub: reports_pb2_grpc.ReportServiceStub, audit_stub: audit_pb2_grpc.AuditServiceStub
) -> None:
    report = await create(grpc_stub, narrative=SECRET_NARRATIVE)
    for _ in range(5):
        await grpc_stub.GetReport(pb.GetReportRequest(name=report.name), metadata=PURPOSE)
    seen: list[int] = []
    queries, token = 0, ""
    while True:
        page = await audit_stub.QueryAccess(
            apb.QueryAccessRequest(resource=report.name, page_size=2, page_token=token),
            metadata=PURPOSE,
        )
        seen += [r.sequence for r in page.records if r.method == "GetReport"]
        queries += 1
        token = page.next_page_token
        if not token:
            break
    # The auditor's own paging queries name the report too: auditors are audited.
    assert len(seen) == 5
    assert seen == sorted(seen)
    assert queries >= 3
    future = apb.QueryAccessRequest(resource=report.name)
    future.start_time.FromDatetime(datetime.now(UTC) + timedelta(days=1))
    assert not (await audit_stub.QueryAccess(future, metadata=PURPOSE)).records


async def test_chain_verifies_and_export_verifies_offline(
    grpc_stub: reports_pb2_grpc.ReportServiceStub,
    audit_stub: audit_pb2_grpc.AuditServiceStub,
    pki: DevPki,
) -> None:
    await create(grpc_stub, narrative=SECRET_NARRATIVE)
    check = await audit_stub.VerifyAuditChain(apb.VerifyAuditChainRequest())
    assert check.intact
    assert check.problem == ""
    assert check.first_broken_sequence == 0
    assert check.records_checked == check.head_sequence > 0

    exported = await audit_stub.ExportAudit(apb.ExportAuditRequest(), metadata=PURPOSE)
    assert exported.sha256 == hashlib.sha256(exported.signed_xml).hexdigest()
    assert exported.first_sequence == 1
    assert exported.record_count == exported.last_sequence
    verifier = XadesVerifier([x509.load_pem_x509_certificate(pki.ca_path.read_bytes())])
    verdict = verifier.verify(exported.signed_xml)
    assert verdict.integrity_ok, verdict.detail
    assert verdict.chains_to_ca
    assert "Justice Exchange Platform" in (verdict.signer_subject or "")
    records = bundle.records_of(verdict.signed_root)
    assert len(records) == exported.record_count
    assert bundle.check_chain(records).intact

    # One changed outcome in the bundle breaks the signature.
    forged = exported.signed_xml.replace(b"<Outcome>FAILED_PRECONDITION<", b"<Outcome>OK<", 1)
    assert forged != exported.signed_xml
    assert not verifier.verify(forged).integrity_ok


async def test_verify_range_and_bad_ranges(audit_stub: audit_pb2_grpc.AuditServiceStub) -> None:
    for _ in range(3):  # records of its own, whichever tests ran before
        await audit_stub.VerifyAuditChain(apb.VerifyAuditChainRequest())
    check = await audit_stub.VerifyAuditChain(
        apb.VerifyAuditChainRequest(from_sequence=2, to_sequence=3)
    )
    assert check.intact
    assert check.records_checked == 2
    assert check.head_sequence == 3
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await audit_stub.VerifyAuditChain(
            apb.VerifyAuditChainRequest(from_sequence=5, to_sequence=2)
        )
    assert_status(refused.value, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELDS")


async def test_list_alerts_rejects_unknown_rules(
    audit_stub: audit_pb2_grpc.AuditServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await audit_stub.ListAlerts(apb.ListAlertsRequest(filter='rule = "NOPE"'))
    assert_status(refused.value, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELDS")
    listed = await audit_stub.ListAlerts(apb.ListAlertsRequest(filter='rule = "BULK_LOOKUP"'))
    assert all(a.rule == "BULK_LOOKUP" for a in listed.alerts)


def test_export_bundle_parser_refuses_other_documents() -> None:
    with pytest.raises(ValueError, match="AuditExport"):
        bundle.records_of(etree.fromstring(b"<Other/>"))
