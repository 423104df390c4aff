"""`justice serve --service`: only the named services answer; a port to a service that runs
elsewhere goes over gRPC (justice.peers), and a peer that is down is UNAVAILABLE."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from justice.app import Application, build
from justice.bridges import Owners, UnitIds
from justice.cli.main import app as cli
from justice.custody.v1 import custody_pb2, custody_pb2_grpc
from justice.devstack.pki import DevPki
from justice.devstack.supervised import free_tcp_port
from justice.peers import Peers, RemoteReports, RemoteUnits
from justice.platform.config import MissingSetting, Settings
from justice.platform.server import start
from justice.reports.v1 import reports_pb2 as rpb
from justice.reports.v1 import reports_pb2_grpc
from tests.api.conftest import client_credentials
from tests.api.evidence_client import report_draft
from tests.api.rich_status import rich_error


@asynccontextmanager
async def serving(settings: Settings, services: set[str]) -> AsyncIterator[Application]:
    application = await build(settings, services=services)
    await start(application.server)
    try:
        yield application
    finally:
        await application.server.server.stop(None)
        await application.close()


@asynccontextmanager
async def channel_to(application: Application, pki: DevPki) -> AsyncIterator[grpc.aio.Channel]:
    channel = grpc.aio.secure_channel(
        f"localhost:{application.server.port}", client_credentials(pki, "custodian-2001")
    )
    try:
        yield channel
    finally:
        await channel.close()


async def test_only_the_named_services_answer(settings: Settings, pki: DevPki) -> None:
    async with (
        serving(settings, {"custody", "fines"}) as application,
        channel_to(application, pki) as channel,
    ):
        assert set(application.server.service_names) == {
            "justice.custody.v1.CustodyService",
            "justice.fines.v1.FineService",
        }
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        # The custodian is authorised for ListItems: the call reaches custody and succeeds.
        await custody_pb2_grpc.CustodyServiceStub(channel).ListItems(
            custody_pb2.ListItemsRequest(page_size=1)
        )
        with pytest.raises(grpc.aio.AioRpcError) as absent:
            await reports_pb2_grpc.ReportServiceStub(channel).ListReports(
                rpb.ListReportsRequest(page_size=1)
            )
        assert absent.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_missing_peer_address_or_s3_endpoint_stops_the_start(settings: Settings) -> None:
    with pytest.raises(MissingSetting, match="JUSTICE_EVIDENCE_ADDRESS"):
        await build(settings, services={"reports"})
    with pytest.raises(MissingSetting, match="JUSTICE_EVIDENCE__S3_ENDPOINT"):
        await build(settings, services={"evidence"})
    with pytest.raises(ValueError, match="known: reports, evidence"):
        await build(settings, services={"reports", "nope"})


async def test_an_unreachable_evidence_peer_is_unavailable_not_internal(
    settings: Settings, pki: DevPki
) -> None:
    nowhere = settings.model_copy(update={"evidence_address": f"127.0.0.1:{free_tcp_port()}"})
    async with serving(nowhere, {"reports"}) as application:
        channel = grpc.aio.secure_channel(
            f"localhost:{application.server.port}", client_credentials(pki, "officer-1001")
        )
        try:
            reports = reports_pb2_grpc.ReportServiceStub(channel)
            draft = await reports.CreateReport(
                rpb.CreateReportRequest(
                    report=report_draft([rpb.Attachment(evidence="evidence/abc")]),
                    request_id=str(uuid.uuid4()),
                )
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await reports.SignReport(rpb.SignReportRequest(name=draft.name))
        finally:
            await channel.close()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    details = rich_error(refused.value)
    assert details.reason == "PEER_UNAVAILABLE"
    assert details.metadata["peer"] == "evidence"


async def test_the_audit_detector_asks_reports_and_access_over_grpc_who_owns_a_report(
    settings: Settings, pki: DevPki
) -> None:
    # Reports would reach evidence there; nothing here signs with attachments.
    elsewhere = settings.model_copy(update={"evidence_address": f"127.0.0.1:{free_tcp_port()}"})
    async with serving(elsewhere, {"reports", "access"}) as application:
        channel = grpc.aio.secure_channel(
            f"localhost:{application.server.port}", client_credentials(pki, "officer-1001")
        )
        try:
            draft = await reports_pb2_grpc.ReportServiceStub(channel).CreateReport(
                rpb.CreateReportRequest(report=report_draft([]), request_id=str(uuid.uuid4()))
            )
        finally:
            await channel.close()
        address = f"127.0.0.1:{application.server.port}"
        apart = settings.model_copy(update={"reports_address": address, "access_address": address})
        peers = Peers(apart, pki.ca_path)
        try:
            owners = Owners(RemoteReports(peers), None, UnitIds(RemoteUnits(peers)))
            # The draft records its unit by display name; audit records carry the unit id.
            assert await owners.unit_of(draft.name) == "pz-antwerpen-team-a"
            assert await owners.unit_of("reports/doesnotexist") is None
        finally:
            await peers.close()


def test_the_cli_refuses_an_unknown_service_naming_the_valid_ones() -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(cli, ["serve", "--service", "reports,nope"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "unknown service nope" in result.output
    assert "reports, evidence, access, audit, exchange, custody, fines" in result.output
