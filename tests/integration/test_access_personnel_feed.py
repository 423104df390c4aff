"""The personnel feed on a real nats-server with authorization: a durable JetStream consumer
with the platform's credentials. A departure announced while the platform is down is applied
when it starts, and the departed officer's calls are refused within seconds."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import nats
import pytest
from pydantic import SecretStr

from justice.access.events import STREAM, SUBJECT
from justice.access.v1 import access_pb2 as apb
from justice.app import Application, build
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.platform.bus import BusRefused
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from tests.api.conftest import client_credentials
from tests.exchange_env import (
    exchange_settings,
    nats_with_partners,
    platform_url,
    serve_platform,
    stop_platform,
)

PURPOSE = (("x-justice-purpose", "personnel feed test"),)
REFUSED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


@pytest.fixture(scope="module")
def nats_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    # Authorization on: the platform's user and the partners' users, nobody else.
    with nats_with_partners(tmp_path_factory.mktemp("nats")) as server:
        yield server


async def _announce(server: NatsServer, event: apb.PersonnelEvent) -> None:
    """Publish as the HR system would, with the platform's user; stored once acknowledged."""
    client = await nats.connect(platform_url(server), allow_reconnect=False)
    try:
        ack = await client.jetstream().publish(SUBJECT, event.SerializeToString())
        assert ack.stream == STREAM
    finally:
        await client.close()


def _event(kind: apb.PersonnelEventType, user: str, unit: str = "") -> apb.PersonnelEvent:
    return apb.PersonnelEvent(
        event_id=str(uuid.uuid4()), type=kind, user=f"users/{user}", unit=unit
    )


async def _list_reports(application: Application, pki: DevPki, user: str) -> grpc.StatusCode:
    target = f"localhost:{application.server.port}"
    async with grpc.aio.secure_channel(target, client_credentials(pki, user)) as channel:
        try:
            await reports_pb2_grpc.ReportServiceStub(channel).ListReports(
                pb.ListReportsRequest(page_size=1), metadata=PURPOSE
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def _status_within(
    application: Application, pki: DevPki, user: str, wanted: tuple[grpc.StatusCode, ...]
) -> tuple[grpc.StatusCode, float]:
    started = time.monotonic()
    code = await _list_reports(application, pki, user)
    while code not in wanted and time.monotonic() - started < 10.0:
        code = await _list_reports(application, pki, user)
    return code, time.monotonic() - started


async def test_a_departure_announced_while_the_platform_is_down_is_applied_at_start(
    pki: DevPki, nats_auth: NatsServer, tmp_path: Path, database_url: str
) -> None:
    user = f"leaver-{uuid.uuid4().hex[:8]}"
    pki.issue_client(user, "Federal Police", "PZ Antwerpen/Team A")
    application = await serve_platform(pki, nats_auth, tmp_path, database_url)
    try:
        # Hired through the feed while the platform runs: the unit's role comes with it.
        await _announce(nats_auth, _event(apb.HIRED, user, "units/pz-antwerpen-team-a"))
        code, _ = await _status_within(application, pki, user, (grpc.StatusCode.OK,))
        assert code == grpc.StatusCode.OK
    finally:
        await stop_platform(application)

    await _announce(nats_auth, _event(apb.DEPARTED, user))

    restarted = await serve_platform(pki, nats_auth, tmp_path, database_url)
    try:
        code, elapsed = await _status_within(restarted, pki, user, REFUSED)
        assert code in REFUSED, f"the departed officer is still served ({code.name})"
        assert elapsed < 5.0
        # The refusal is the departure's, not a broken platform: a colleague is still served.
        assert await _list_reports(restarted, pki, "officer-1001") == grpc.StatusCode.OK
    finally:
        await stop_platform(restarted)


async def test_a_wrong_nats_password_stops_the_start(
    pki: DevPki, nats_auth: NatsServer, tmp_path: Path, database_url: str
) -> None:
    settings = exchange_settings(pki, nats_auth, tmp_path, database_url)
    password = "not-the-platform-password"
    wrong = settings.model_copy(
        update={
            "nats_url": nats_auth.url,
            "nats_user": "justice-platform",
            "nats_password": SecretStr(password),
        }
    )
    started = time.monotonic()
    with pytest.raises(BusRefused, match="Authorization Violation") as refused:
        await build(wrong)
    assert time.monotonic() - started < 5.0
    # The message names the user and the server, never the password.
    assert "justice-platform" in str(refused.value)
    assert nats_auth.url in str(refused.value)
    assert password not in str(refused.value)
