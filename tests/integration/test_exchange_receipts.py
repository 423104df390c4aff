"""A partner's signed receipt is kept as evidence: fetched over gRPC (GetDeliveryReceipt, or
bundled by ExportReport), checked offline by `justice verify --receipt`, refused after any one
byte of the partner's envelope changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from typer.testing import CliRunner

from justice.app import Application, build
from justice.cli.main import app as cli
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.exchange.receipts import check_receipt
from justice.exchange.v1 import exchange_pb2 as pb
from justice.exchange.v1 import exchange_pb2_grpc
from justice.partner.client import ProcessedLog, listen
from justice.partner.simulator import ProsecutorSimulator
from justice.platform.server import start
from justice.reports.model import ReportState
from justice.reports.v1 import reports_pb2, reports_pb2_grpc
from tests.api.conftest import client_credentials
from tests.builders import PURPOSE, submitted_report
from tests.eventually import eventually
from tests.exchange_env import exchange_settings, nats_with_partners, partner_record, partner_side

PROSECUTOR = "prosecutor-antwerp"


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with nats_with_partners(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture(scope="module")
async def platform(
    pki: DevPki, nats: NatsServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Application]:
    tmp = tmp_path_factory.mktemp("receipts")
    application = await build(
        exchange_settings(pki, nats, tmp / "state", f"sqlite+aiosqlite:///{tmp / 'justice.db'}")
    )
    assert application.exchange is not None
    await application.exchange.service.create_partner(partner_record(pki, PROSECUTOR))
    await start(application.server)
    yield application
    await application.server.server.stop(None)
    await application.close()


@pytest.fixture(scope="module")
async def acknowledged(platform: Application, pki: DevPki, nats: NatsServer) -> str:
    """A report the prosecutor's simulator received, receipted and acknowledged."""
    name = await submitted_report(platform)
    client = await partner_side(pki).connect(nats, PROSECUTOR)
    stop = asyncio.Event()
    task = asyncio.create_task(
        listen(client, ProsecutorSimulator(client).handle, ProcessedLog(), stop)
    )
    try:

        async def done() -> bool:
            return (await platform.reports.get(name)).state is ReportState.ACKNOWLEDGED

        await eventually(done, within=20, what="acknowledgement")
    finally:
        stop.set()
        await task
        await client.close()
    return name


def _channel(platform: Application, pki: DevPki, principal: str) -> grpc.aio.Channel:
    target = f"localhost:{platform.server.port}"
    return grpc.aio.secure_channel(target, client_credentials(pki, principal))


async def _delivery_of(stub: exchange_pb2_grpc.ExchangeServiceStub, report: str) -> pb.Delivery:
    listed = await stub.ListDeliveries(pb.ListDeliveriesRequest(filter='state = "DELIVERED"'))
    return next(d for d in listed.deliveries if d.subject_ref == report)


async def test_receipt_is_kept_exported_and_verified_offline(
    platform: Application, pki: DevPki, acknowledged: str, tmp_path: Path
) -> None:
    async with _channel(platform, pki, PROSECUTOR) as channel:
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        delivery = await _delivery_of(stub, acknowledged)
        kept = await stub.GetDeliveryReceipt(
            pb.GetDeliveryReceiptRequest(name=f"{delivery.name}/receipt")
        )
    assert kept.partner == PROSECUTOR
    path = tmp_path / "receipt.bin"
    path.write_bytes(kept.SerializeToString())

    result = CliRunner().invoke(cli, ["verify", "--receipt", str(path), "--ca", str(pki.ca_path)])

    assert result.exit_code == 0, result.output
    assert f"VALID receipt for {delivery.name}: ACCEPTED" in result.output

    envelope = bytearray(kept.envelope)
    envelope[len(envelope) // 2] ^= 0x01
    kept.envelope = bytes(envelope)
    path.write_bytes(kept.SerializeToString())
    refused = CliRunner().invoke(cli, ["verify", "--receipt", str(path), "--ca", str(pki.ca_path)])
    assert refused.exit_code == 1, refused.output
    assert "INVALID" in refused.output


async def test_every_single_byte_change_of_the_envelope_is_refused(
    platform: Application, pki: DevPki, acknowledged: str
) -> None:
    async with _channel(platform, pki, "auditor-4001") as channel:
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        delivery = await _delivery_of(stub, acknowledged)
        kept = await stub.GetDeliveryReceipt(
            pb.GetDeliveryReceiptRequest(name=f"{delivery.name}/receipt")
        )
    anchors = [x509.load_pem_x509_certificate(pki.ca_path.read_bytes())]
    assert check_receipt(kept.SerializeToString(), anchors).ok
    original = bytes(kept.envelope)
    accepted = []
    for index in range(len(original)):
        changed = bytearray(original)
        changed[index] ^= 0x01
        kept.envelope = bytes(changed)
        if check_receipt(kept.SerializeToString(), anchors).ok:
            accepted.append(index)
    assert accepted == []


async def test_export_bundles_the_receipts_and_other_partners_see_none(
    platform: Application, pki: DevPki, acknowledged: str
) -> None:
    async with _channel(platform, pki, "officer-1001") as channel:
        reports = reports_pb2_grpc.ReportServiceStub(channel)
        exported = await reports.ExportReport(
            reports_pb2.ExportReportRequest(name=acknowledged, include_receipts=True),
            metadata=PURPOSE,
        )
        plain = await reports.ExportReport(
            reports_pb2.ExportReportRequest(name=acknowledged), metadata=PURPOSE
        )
    anchors = [x509.load_pem_x509_certificate(pki.ca_path.read_bytes())]
    assert len(exported.delivery_receipts) == 1
    check = check_receipt(exported.delivery_receipts[0], anchors)
    assert check.ok, check
    assert check.partner == PROSECUTOR
    assert list(plain.delivery_receipts) == []

    async with _channel(platform, pki, "court-brussels") as channel:
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.GetDeliveryReceipt(
                pb.GetDeliveryReceiptRequest(name=f"{check.delivery}/receipt")
            )
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
