"""What operators watch, on the real server with NATS and S3: the Prometheus endpoint scraped
during a run, and health that follows NATS going away and coming back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from justice.app import Application
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.devstack.seaweed import SeaweedS3
from justice.devstack.supervised import free_tcp_ports
from justice.evidence.v1 import evidence_pb2, evidence_pb2_grpc
from justice.platform.config import Settings
from justice.platform.listing import Page
from justice.platform.server import LIVENESS
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from tests.api.conftest import with_evidence
from tests.builders import PURPOSE, create, draft
from tests.eventually import eventually
from tests.exchange_env import SECRET, partner_record, platform_url
from tests.prometheus_scrape import Series, value
from tests.prometheus_scrape import scrape as scrape_port

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True, scope="module")

PARTNER = "prosecutor-antwerp"
REPORTS = "justice.reports.v1.ReportService"
EVIDENCE = b"bodycam frames " * 20_000

# The plaintext health-only port the kubelet probes.
(PROBE_PORT,) = free_tcp_ports(1)


@pytest.fixture(scope="module")
def nats(exchange_nats: NatsServer) -> NatsServer:
    return exchange_nats


@pytest.fixture(scope="module")
def settings(settings: Settings, s3_server: SeaweedS3, nats: NatsServer) -> Settings:
    return with_evidence(
        settings.updated(exchange={"nats_secret": SecretStr(SECRET.decode())}),
        s3_server,
        nats_url=platform_url(nats),
        metrics_listen="127.0.0.1:0",
        metrics_sample_seconds=0.2,
        health_check_seconds=0.2,
        health_listen=f"127.0.0.1:{PROBE_PORT}",
    )


@pytest.fixture(scope="module")
async def partner(application: Application, pki: DevPki) -> str:
    assert application.exchange is not None
    await application.exchange.service.create_partner(partner_record(pki, PARTNER))
    return PARTNER


@pytest.fixture(scope="module")
async def health(grpc_channel: grpc.aio.Channel) -> health_pb2_grpc.HealthStub:
    return health_pb2_grpc.HealthStub(grpc_channel)


@pytest.fixture(scope="module")
async def probe(application: Application) -> AsyncIterator[health_pb2_grpc.HealthStub]:
    """What the kubelet sees: the plaintext health-only port."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{PROBE_PORT}") as channel:
        yield health_pb2_grpc.HealthStub(channel)


def scrape(application: Application) -> Series:
    assert application.metrics is not None
    return scrape_port(application.metrics.port)


async def run(
    grpc_channel: grpc.aio.Channel, grpc_stub: reports_pb2_grpc.ReportServiceStub, partner: str
) -> None:
    """A short working session: reports written, signed and submitted; evidence up and down;
    one call that fails."""
    for _ in range(3):
        report = await create(grpc_stub)
        await grpc_stub.SignReport(pb.SignReportRequest(name=report.name))
        await grpc_stub.SubmitReport(pb.SubmitReportRequest(name=report.name, recipient=partner))
    with pytest.raises(grpc.aio.AioRpcError):
        await grpc_stub.GetReport(pb.GetReportRequest(name="reports/nope"), metadata=PURPOSE)
    evidence = evidence_pb2_grpc.EvidenceServiceStub(grpc_channel)

    async def requests() -> AsyncIterator[evidence_pb2.UploadEvidenceRequest]:
        yield evidence_pb2.UploadEvidenceRequest(
            metadata=evidence_pb2.EvidenceMetadata(
                case_number=draft().case_number,
                media_type="video/mp4",
                original_filename="bodycam.mp4",
                request_id=uuid.uuid4().hex,
            )
        )
        yield evidence_pb2.UploadEvidenceRequest(chunk=EVIDENCE)

    uploaded = await evidence.UploadEvidence(requests())
    async for _ in evidence.DownloadEvidence(
        evidence_pb2.DownloadEvidenceRequest(name=uploaded.name), metadata=PURPOSE
    ):
        pass


async def test_a_scrape_during_a_run_carries_every_series(
    application: Application,
    grpc_channel: grpc.aio.Channel,
    grpc_stub: reports_pb2_grpc.ReportServiceStub,
    partner: str,
) -> None:
    await run(grpc_channel, grpc_stub, partner)

    async def published() -> Series | None:
        series = await asyncio.to_thread(scrape, application)
        return (
            series if (value(series, "justice_deliveries", state="PUBLISHED") or 0) >= 3 else None
        )

    series = await eventually(published, what="three deliveries PUBLISHED in the metrics")
    ok = {"service": REPORTS, "method": "SubmitReport", "code": "OK"}
    assert value(series, "justice_rpcs_total", **ok) == 3
    assert value(series, "justice_rpc_duration_seconds_count", **ok) == 3
    not_found = {"service": REPORTS, "method": "GetReport", "code": "NOT_FOUND"}
    assert value(series, "justice_rpcs_total", **not_found) == 1
    # Three reports, and the audit export signer is not used: three signatures at least.
    assert (value(series, "justice_signing_duration_seconds_count") or 0) >= 3
    assert value(series, "justice_evidence_bytes_total", direction="in") == len(EVIDENCE)
    assert value(series, "justice_evidence_bytes_total", direction="out") == len(EVIDENCE)
    assert value(series, "justice_outbox_backlog") == 0
    assert value(series, "justice_outbox_oldest_age_seconds") == 0
    for state in ("PENDING", "DELIVERED", "REJECTED", "EXPIRED"):
        assert value(series, "justice_deliveries", state=state) == 0
    # Every call above was audited.
    assert (value(series, "justice_audit_chain_length") or 0) >= 10
    # Whatever the detector made of this session (off duty, outside the unit, ...).
    # The detector follows the log in batches and the gauge is sampled: both settle.
    await asyncio.sleep(0.5)
    alerts = await application.audit.service.list_alerts(None, None, Page(100, ""))

    async def alerts_sampled() -> Series | None:
        fresh = await asyncio.to_thread(scrape, application)
        return fresh if value(fresh, "justice_audit_alerts") == len(alerts) else None

    await eventually(alerts_sampled, what="the alerts gauge equal to the stored alerts")


async def test_health_follows_nats_away_and_back(
    application: Application,
    health: health_pb2_grpc.HealthStub,
    probe: health_pb2_grpc.HealthStub,
    nats: NatsServer,
) -> None:
    async def status(expected: int) -> bool:
        answer = await health.Check(health_pb2.HealthCheckRequest(service=REPORTS))
        return answer.status == expected

    async def probed(service: str) -> int:
        return (await probe.Check(health_pb2.HealthCheckRequest(service=service))).status

    assert await status(health_pb2.HealthCheckResponse.SERVING)
    assert await probed("") == health_pb2.HealthCheckResponse.SERVING
    await asyncio.to_thread(nats.stop)
    try:
        await eventually(
            lambda: status(health_pb2.HealthCheckResponse.NOT_SERVING),
            what="NOT_SERVING with NATS down",
        )
        assert application.health is not None
        assert application.health.down == frozenset({"nats"})
        # Readiness follows; liveness does not (a restart would not bring NATS back).
        assert await probed("") == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await probed(LIVENESS) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await asyncio.to_thread(nats.start)
        await asyncio.to_thread(nats.wait_ready)
    await eventually(
        lambda: status(health_pb2.HealthCheckResponse.SERVING),
        within=15,
        what="SERVING again once NATS is back",
    )
