"""The transport refuses what it must: plaintext, a client certificate from another CA,
an over-size message; a dev token works until its subject leaves."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from justice.access.v1 import access_pb2 as access_pb
from justice.access.v1 import access_pb2_grpc
from justice.app import Application
from justice.devstack.pki import DevPki
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from justice.security.tokens import DevTokens
from tests.api.conftest import ChannelFactory
from tests.api.rich_status import rich_error

PURPOSE = ("x-justice-purpose", "security test")


async def test_plaintext_connection_is_refused(grpc_addr: str) -> None:
    async with grpc.aio.insecure_channel(grpc_addr) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await reports_pb2_grpc.ReportServiceStub(channel).ListReports(
                pb.ListReportsRequest(), timeout=5
            )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_client_certificate_from_another_ca_is_refused(
    grpc_addr: str, pki: DevPki, tmp_path: Path
) -> None:
    wrong = DevPki(tmp_path / "wrong-ca", b"another-passphrase")
    # Same subject as a registered officer: only the issuing CA differs.
    cert, key = wrong.issue_client("officer-1001", "Federal Police", "PZ Antwerpen/Team A")
    credentials = grpc.ssl_channel_credentials(
        pki.ca_path.read_bytes(), key.read_bytes(), cert.read_bytes()
    )
    async with grpc.aio.secure_channel(grpc_addr, credentials) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await reports_pb2_grpc.ReportServiceStub(channel).ListReports(
                pb.ListReportsRequest(), timeout=5
            )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_no_client_certificate_is_refused(grpc_addr: str, pki: DevPki) -> None:
    credentials = grpc.ssl_channel_credentials(pki.ca_path.read_bytes())
    async with grpc.aio.secure_channel(grpc_addr, credentials) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await reports_pb2_grpc.ReportServiceStub(channel).ListReports(
                pb.ListReportsRequest(), timeout=5
            )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_over_size_message_is_resource_exhausted(
    grpc_create_channel: ChannelFactory, application: Application
) -> None:
    limit = application.settings.max_message_bytes
    async with grpc_create_channel() as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await reports_pb2_grpc.ReportServiceStub(channel).VerifyReport(
                pb.VerifyReportRequest(signed_xml=b"<" * (limit + 1024)), timeout=30
            )
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_dev_token_names_the_caller_and_dies_with_a_departure(
    grpc_create_channel: ChannelFactory, application: Application, pki: DevPki
) -> None:
    settings = application.settings
    tokens = DevTokens.from_file(settings.pki_dir / "token.key", timedelta(minutes=15))
    now = datetime.now(UTC)
    async with (
        grpc_create_channel(principal="access-admin-5001") as admin_channel,
        grpc_create_channel(principal="officer-1002") as channel,
    ):
        admin = access_pb2_grpc.AccessServiceStub(admin_channel)
        user = "token-user-6101"
        event = access_pb.PersonnelEvent(
            event_id=str(uuid.uuid4()),
            type=access_pb.HIRED,
            user=f"users/{user}",
            unit="units/pz-antwerpen-team-a",
        )
        await admin.RecordPersonnelEvent(access_pb.RecordPersonnelEventRequest(event=event))
        token = tokens.mint(user, timedelta(minutes=5), now)
        stub = reports_pb2_grpc.ReportServiceStub(channel)
        bearer = (("authorization", f"Bearer {token}"), PURPOSE)
        created = await stub.CreateReport(
            pb.CreateReportRequest(report=pb.Report(case_number="T.1", language="nl")),
            metadata=bearer,
        )
        # The token, not the connection's certificate (officer-1002), names the author.
        assert created.author == user

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListReports(
                pb.ListReportsRequest(), metadata=(("authorization", "Bearer x.y"), PURPOSE)
            )
        assert rich_error(caught.value).reason == "BAD_TOKEN"

        event = access_pb.PersonnelEvent(
            event_id=str(uuid.uuid4()), type=access_pb.SUSPENDED, user=f"users/{user}"
        )
        await admin.RecordPersonnelEvent(access_pb.RecordPersonnelEventRequest(event=event))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListReports(pb.ListReportsRequest(), metadata=bearer)
        assert rich_error(caught.value).reason == "PRINCIPAL_INACTIVE"
        # Back on duty: the old token stays dead, a new one works.
        event = access_pb.PersonnelEvent(
            event_id=str(uuid.uuid4()),
            type=access_pb.PLACED,
            user=f"users/{user}",
            unit="units/pz-antwerpen-team-a",
        )
        await admin.RecordPersonnelEvent(access_pb.RecordPersonnelEventRequest(event=event))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListReports(pb.ListReportsRequest(), metadata=bearer)
        assert rich_error(caught.value).reason == "TOKEN_REVOKED"
        fresh = tokens.mint(user, timedelta(minutes=5), datetime.now(UTC))
        await stub.ListReports(
            pb.ListReportsRequest(), metadata=(("authorization", f"Bearer {fresh}"), PURPOSE)
        )
