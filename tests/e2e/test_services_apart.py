"""Two `justice serve` processes on one PostgreSQL database, `--service reports` and
`--service evidence`: a report's attachments are checked and shared across the gRPC
adapters (justice.peers), as the service identity, with the in-process statuses."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from justice.devstack.seaweed import SeaweedS3
from justice.devstack.supervised import free_tcp_port
from justice.evidence.v1 import evidence_pb2_grpc
from justice.reports.v1 import reports_pb2 as rpb
from justice.reports.v1 import reports_pb2_grpc
from tests.api.evidence_client import report_draft, upload
from tests.api.rich_status import rich_error
from tests.benchmarks.platform_process import channel_credentials, served_process
from tests.databases import postgres_schema

PURPOSE = (("x-justice-purpose", "services apart test"),)


@asynccontextmanager
async def officer_channel(state_dir: Path, port: int) -> AsyncIterator[grpc.aio.Channel]:
    credentials = channel_credentials(state_dir / "pki", "officer-1001")
    channel = grpc.aio.secure_channel(f"localhost:{port}", credentials)
    try:
        yield channel
    finally:
        await channel.close()


async def rows(database_url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return [tuple(r) for r in (await connection.execute(text(sql), params)).all()]
    finally:
        await engine.dispose()


async def test_reports_check_and_share_evidence_served_by_another_process(
    postgres_url: str, s3_server: SeaweedS3, tmp_path: Path
) -> None:
    reports_port, evidence_port = free_tcp_port(), free_tcp_port()
    suffix = uuid.uuid4().hex[:10]
    with postgres_schema(postgres_url) as database_url:
        env = {
            "JUSTICE_DATABASE_URL": database_url,
            "JUSTICE_REPORTS_ADDRESS": f"127.0.0.1:{reports_port}",
            "JUSTICE_EVIDENCE_ADDRESS": f"127.0.0.1:{evidence_port}",
            "JUSTICE_EVIDENCE__S3_ENDPOINT": s3_server.endpoint,
            "JUSTICE_EVIDENCE__S3_ACCESS_KEY": s3_server.access_key,
            "JUSTICE_EVIDENCE__S3_SECRET_KEY": s3_server.secret_key,
            "JUSTICE_EVIDENCE__BUCKET": f"apart-{suffix}",
            "JUSTICE_EVIDENCE__STAGING_BUCKET": f"apart-stage-{suffix}",
            "JUSTICE_SHUTDOWN_GRACE_SECONDS": "1",
        }
        # One after the other: the first migrates the schema and enrols the dev principals.
        with (
            served_process(tmp_path, env, services=["reports"], port=reports_port),
            served_process(tmp_path, env, services=["evidence"], port=evidence_port) as (_, ev),
        ):
            # The officer talks to each process directly, as a gateway would route the calls.
            async with (
                officer_channel(tmp_path, reports_port) as to_reports,
                officer_channel(tmp_path, evidence_port) as to_evidence,
            ):
                reports = reports_pb2_grpc.ReportServiceStub(to_reports)
                evidence = evidence_pb2_grpc.EvidenceServiceStub(to_evidence)
                case = await reports.CreateReport(
                    rpb.CreateReportRequest(report=report_draft([]), request_id=str(uuid.uuid4()))
                )
                # The evidence process asks the reports process about the case and report.
                video = os.urandom(200_000)
                stored = await upload(evidence, video, report=case.name)
                # Each process answers only its own service.
                with pytest.raises(grpc.aio.AioRpcError) as absent:
                    await reports_pb2_grpc.ReportServiceStub(to_evidence).GetReport(
                        rpb.GetReportRequest(name=case.name), metadata=PURPOSE
                    )
                assert absent.value.code() == grpc.StatusCode.UNIMPLEMENTED

                draft = await reports.CreateReport(
                    rpb.CreateReportRequest(
                        report=report_draft([rpb.Attachment(evidence=stored.name)]),
                        request_id=str(uuid.uuid4()),
                    )
                )
                signed = await reports.SignReport(rpb.SignReportRequest(name=draft.name))
                assert [
                    (a.evidence, a.sha256, a.size_bytes, a.media_type) for a in signed.attachments
                ] == [(stored.name, stored.sha256, len(video), "video/mp4")]

                # An unknown evidence id: the same refusal as in one process.
                missing = await reports.CreateReport(
                    rpb.CreateReportRequest(
                        report=report_draft([rpb.Attachment(evidence="evidence/doesnotexist")]),
                        request_id=str(uuid.uuid4()),
                    )
                )
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await reports.SignReport(rpb.SignReportRequest(name=missing.name))
                assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert rich_error(refused.value).reason == "EVIDENCE_MISSING"

                # Submitted, the link is a share the evidence process recorded for the officer.
                await reports.SubmitReport(rpb.SubmitReportRequest(name=signed.name))
                shares = await rows(
                    database_url,
                    "SELECT sharer, partner FROM evidence_share WHERE evidence_id = :e",
                    e=stored.name.removeprefix("evidence/"),
                )
                assert shares == [("officer-1001", "prosecutor-antwerp")]

                # With the evidence process gone, signing is UNAVAILABLE, naming the peer.
                ev.terminate()
                ev.wait(timeout=30)
                again = await reports.CreateReport(
                    rpb.CreateReportRequest(
                        report=report_draft([rpb.Attachment(evidence=stored.name)]),
                        request_id=str(uuid.uuid4()),
                    )
                )
                with pytest.raises(grpc.aio.AioRpcError) as down:
                    await reports.SignReport(rpb.SignReportRequest(name=again.name))
                assert down.value.code() == grpc.StatusCode.UNAVAILABLE
                assert rich_error(down.value).metadata["peer"] == "evidence"
        # The peers' calls were audited as the service identity, like any other call.
        internal = await rows(
            database_url,
            "SELECT DISTINCT method, principal, outcome FROM audit_record "
            "WHERE method IN ('CheckCase', 'DescribeReport', 'CheckAttachment', "
            "'ShareAttachment') ORDER BY method",
        )
    assert ("CheckAttachment", "justice-server", "OK") in internal
    assert ("ShareAttachment", "justice-server", "OK") in internal
    # The upload named its report: the evidence process asked the reports process about it.
    assert ("DescribeReport", "justice-server", "OK") in internal
