"""pytest-grpc fixtures, overridden for grpc.aio and mTLS.

pytest-grpc builds a synchronous grpc.server and an insecure channel. We keep its
fixture names and its grpc_stub, but grpc_server is the real application server
(grpc.aio, TLS, interceptors), grpc_addr is the port that server bound (the plugin's
own version leaks a bound socket), and channels present a dev-PKI client certificate.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from pydantic import SecretStr
from sqlalchemy import text

from justice.app import Application, build
from justice.audit.v1 import audit_pb2_grpc
from justice.devstack.pki import DevPki
from justice.devstack.seaweed import SeaweedS3
from justice.platform.config import Settings
from justice.platform.server import BoundServer, start
from justice.reports.v1 import reports_pb2_grpc

ChannelFactory = Callable[..., grpc.aio.Channel]


def with_evidence(
    settings: Settings,
    s3: SeaweedS3,
    evidence: dict[str, object] | None = None,
    **overrides: object,
) -> Settings:
    """Settings on the test S3 server, with buckets of their own (the evidence service is
    mounted only with S3); `evidence` changes more of the evidence section, `overrides` the
    platform's own settings."""
    suffix = uuid.uuid4().hex[:10]
    on_s3 = settings.updated(
        evidence={
            "s3_endpoint": s3.endpoint,
            "s3_access_key": s3.access_key,
            "s3_secret_key": SecretStr(s3.secret_key),
            "bucket": f"ev-{suffix}",
            "staging_bucket": f"ev-stage-{suffix}",
            **(evidence or {}),
        }
    )
    return on_s3.model_copy(update=overrides)


async def outbox_message(application: Application, subject_ref: str) -> Any:
    """The outbox row of the message about `subject_ref` (e.g. reports/<id>@<version>)."""
    async with application.database.engine.connect() as connection:
        query = text("SELECT * FROM exchange_outbox WHERE subject_ref = :ref")
        return (await connection.execute(query, {"ref": subject_ref})).one()


@pytest.fixture(scope="module")
def grpc_stub_cls() -> type:
    return reports_pb2_grpc.ReportServiceStub


@pytest.fixture(scope="module")
async def application(settings: Settings) -> AsyncIterator[Application]:
    app = await build(settings, clock=lambda: datetime.now(UTC))
    await start(app.server)
    yield app
    await app.server.server.stop(None)
    await app.close()


@pytest.fixture(scope="module")
def grpc_server(application: Application) -> BoundServer:
    return application.server


@pytest.fixture(scope="module")
def grpc_addr(grpc_server: BoundServer) -> str:
    return f"localhost:{grpc_server.port}"


def client_credentials(pki: DevPki, principal: str | None) -> grpc.ChannelCredentials:
    ca = pki.ca_path.read_bytes()
    if principal is None:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    cert, key = pki.client_paths(principal)
    return grpc.ssl_channel_credentials(ca, key.read_bytes(), cert.read_bytes())


@pytest.fixture(scope="module")
def grpc_create_channel(grpc_addr: str, pki: DevPki) -> ChannelFactory:
    def create(
        credentials: grpc.ChannelCredentials | None = None,
        options: list[tuple[str, object]] | None = None,
        *,
        principal: str | None = "officer-1001",
    ) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(
            grpc_addr, credentials or client_credentials(pki, principal), options
        )

    return create


@pytest.fixture(scope="module")
async def grpc_channel(grpc_create_channel: ChannelFactory) -> AsyncIterator[grpc.aio.Channel]:
    channel = grpc_create_channel()
    yield channel
    await channel.close()


@pytest.fixture(scope="module")
async def other_officer_stub(
    grpc_create_channel: ChannelFactory,
) -> AsyncIterator[reports_pb2_grpc.ReportServiceStub]:
    channel = grpc_create_channel(principal="officer-1002")
    yield reports_pb2_grpc.ReportServiceStub(channel)
    await channel.close()


@pytest.fixture(scope="module")
def grpc_add_to_server() -> Callable[..., None]:
    return reports_pb2_grpc.add_ReportServiceServicer_to_server


Enrol = Callable[..., Awaitable[str]]


@pytest.fixture(scope="module")
def enrol(application: Application, pki: DevPki) -> Enrol:
    """Register a test principal with exactly `roles` and give it a client certificate."""
    from justice.access.service import Enrolment
    from justice.security.principal import Role

    async def create(
        user: str,
        roles: frozenset[Role] = frozenset(),
        *,
        unit: str = "test-unit",
        unit_name: str = "Test Unit",
        partner: str = "",
    ) -> str:
        assert application.access is not None
        assert application.directory is not None
        await application.access.enrol(
            [
                Enrolment(
                    user=user,
                    agency="Test Agency",
                    unit=unit,
                    unit_name=unit_name,
                    unit_partner=partner,
                    member_roles=frozenset(),
                    personal_roles=roles,
                )
            ]
        )
        application.directory.invalidate()
        if not pki.client_paths(user)[0].exists():
            pki.issue_client(user, "Test Agency", unit_name)
        return user

    return create


@pytest.fixture(scope="module")
async def auditor(
    grpc_create_channel: ChannelFactory,
) -> AsyncIterator[audit_pb2_grpc.AuditServiceStub]:
    """The AuditService as the demo auditor (ListAlerts, access queries)."""
    channel = grpc_create_channel(principal="auditor-4001")
    yield audit_pb2_grpc.AuditServiceStub(channel)
    await channel.close()
