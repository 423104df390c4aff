"""`justice serve` as an operator runs it: JSON logs free of the demo's personal data, and
SIGTERM draining the calls in flight and stopping the relay without losing a message."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from justice.custody.ledger import MESSAGE_TYPE_DECISION as CUSTODY_DECISION
from justice.custody.ledger import MESSAGE_TYPE_DECISION_REQUESTED as CUSTODY_DECISION_REQUESTED
from justice.custody.ledger import MESSAGE_TYPE_EVENT as CUSTODY_EVENT
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.devstack.seaweed import SeaweedS3
from justice.devstack.supervised import free_tcp_ports
from justice.exchange.v1 import exchange_pb2, exchange_pb2_grpc
from justice.fines.service import (
    MESSAGE_TYPE_LOOKUP,
    MESSAGE_TYPE_LOOKUP_REPLY,
    MESSAGE_TYPE_NOTICE,
)
from justice.partner.client import Answer, ProcessedLog, Received, listen
from justice.platform.config import Settings
from justice.reports.service import MESSAGE_TYPE_SUBMITTED
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from tests.api.conftest import client_credentials
from tests.cli_process import run_cli, start_cli
from tests.eventually import eventually
from tests.exchange_env import (
    exchange_settings,
    partner_side,
    platform_env,
    platform_process,
)

PARTNER = "prosecutor-antwerp"
# What `justice demo` writes about people and facts (cli/demo.py), and the officer's name.
PERSONAL_DATA = ("Peeters", "blauwe fiets", "rood zadel", "Meir 1", "Jan Peeters")


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]
    log: Path
    settings: Settings
    nats: NatsServer

    def channel(self, pki: DevPki, principal: str = "officer-1001") -> grpc.aio.Channel:
        return grpc.aio.secure_channel(f"localhost:{self.port}", client_credentials(pki, principal))


@pytest.fixture(scope="module")
async def served(
    exchange_nats: NatsServer,
    s3_server: SeaweedS3,
    pki: DevPki,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Served]:
    base = tmp_path_factory.mktemp("serve")
    nats = exchange_nats
    settings = exchange_settings(pki, nats, base, f"sqlite+aiosqlite:///{base / 'justice.db'}")
    port, metrics_port = free_tcp_ports(2)
    suffix = uuid.uuid4().hex[:8]
    env = {
        **platform_env(settings, nats, base / "state"),
        "JUSTICE_LISTEN": f"127.0.0.1:{port}",
        "JUSTICE_LOG_FORMAT": "json",
        "JUSTICE_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        "JUSTICE_SHUTDOWN_GRACE_SECONDS": "20",
        "JUSTICE_SHUTDOWN_SETTLE_SECONDS": "1",
        "JUSTICE_EVIDENCE__S3_ENDPOINT": s3_server.endpoint,
        "JUSTICE_EVIDENCE__S3_ACCESS_KEY": s3_server.access_key,
        "JUSTICE_EVIDENCE__S3_SECRET_KEY": s3_server.secret_key,
        "JUSTICE_EVIDENCE__BUCKET": f"ops-{suffix}",
        "JUSTICE_EVIDENCE__STAGING_BUCKET": f"ops-stage-{suffix}",
    }
    log = base / "serve.log"
    process = start_cli(env, log, "serve")
    served = Served(process, port, env, log, settings, nats)
    try:
        await _until_serving(served, pki)
        async with served.channel(pki, "access-admin-5001") as channel:
            # Partners sign their envelopes with their P-256 envelope keys.
            cert, _ = pki.envelope_paths(PARTNER)
            await exchange_pb2_grpc.ExchangeServiceStub(channel).CreatePartner(
                exchange_pb2.CreatePartnerRequest(
                    partner_id=PARTNER,
                    partner=exchange_pb2.Partner(
                        kind=exchange_pb2.PROSECUTOR,
                        country="BE",
                        signing_certificate_pem=cert.read_text(),
                        # What the demo's prosecutor answers: reports and custody decisions.
                        send_types=["report_acknowledged", "report_rejected", CUSTODY_DECISION],
                        receive_types=[
                            MESSAGE_TYPE_SUBMITTED,
                            CUSTODY_EVENT,
                            CUSTODY_DECISION_REQUESTED,
                        ],
                    ),
                )
            )
            # The demo's fine: the Dutch register answers, the fines agency gets the letter.
            for partner_id, kind, sends, receives in (
                (
                    "vehicle-register-nl",
                    exchange_pb2.VEHICLE_REGISTER,
                    [MESSAGE_TYPE_LOOKUP_REPLY],
                    [MESSAGE_TYPE_LOOKUP],
                ),
                ("fines-agency", exchange_pb2.FINE_AGENCY, [], [MESSAGE_TYPE_NOTICE]),
            ):
                cert, _ = pki.envelope_paths(partner_id)
                await exchange_pb2_grpc.ExchangeServiceStub(channel).CreatePartner(
                    exchange_pb2.CreatePartnerRequest(
                        partner_id=partner_id,
                        partner=exchange_pb2.Partner(
                            kind=kind,
                            country="NL" if kind == exchange_pb2.VEHICLE_REGISTER else "BE",
                            signing_certificate_pem=cert.read_text(),
                            send_types=sends,
                            receive_types=receives,
                        ),
                    )
                )
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # by PID: only the process this test started
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


async def _until_serving(served: Served, pki: DevPki) -> None:
    async with served.channel(pki) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def serving() -> bool:
            if served.process.poll() is not None:
                raise AssertionError(served.log.read_text()[-3000:])
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.aio.AioRpcError:
                return False
            return answer.status == health_pb2.HealthCheckResponse.SERVING

        await eventually(serving, within=60, what="justice serve SERVING")


def test_json_logs_of_a_demo_run_hold_no_personal_data(served: Served, tmp_path: Path) -> None:
    # The demo's partner side connects as the partner itself, so it needs the bare URL.
    env = {**served.env, "JUSTICE_NATS_URL": served.nats.url}
    demo = run_cli(env, "demo", "--out", str(tmp_path / "demo"))
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "ACKNOWLEDGED" in demo.stdout

    lines = [line for line in served.log.read_text().splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    text = served.log.read_text()
    for value in PERSONAL_DATA:
        assert value not in text, f"{value!r} is in the server's log"


async def test_sigterm_drains_calls_in_flight_and_loses_no_message(
    served: Served, pki: DevPki, tmp_path: Path
) -> None:
    async with served.channel(pki) as channel:
        stub = reports_pb2_grpc.ReportServiceStub(channel)
        names = []
        for i in range(40):
            report = await stub.CreateReport(
                pb.CreateReportRequest(
                    report=pb.Report(
                        case_number="AN.12.L3.009999/26",
                        reporting_unit="PZ Antwerpen/Team A",
                        offences=[pb.Offence(code="43A", article="Art. 461 Sw.")],
                        place="Station",
                        language="nl",
                        narrative=f"Vaststelling {i}.",
                        facts_time=Timestamp(seconds=int(time.time()) - 60),
                    ),
                    request_id=str(uuid.uuid4()),
                )
            )
            await stub.SignReport(pb.SignReportRequest(name=report.name))
            names.append(report.name)

        signalled_at = 0.0
        finished: list[tuple[str, grpc.StatusCode, float]] = []

        async def submit(name: str) -> None:
            nonlocal signalled_at
            try:
                await stub.SubmitReport(pb.SubmitReportRequest(name=name, recipient=PARTNER))
                code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                code = error.code()
            finished.append((name, code, time.monotonic()))
            if not signalled_at:
                # SIGTERM as soon as the first answer is back: the others are in flight.
                signalled_at = time.monotonic()
                os.kill(served.process.pid, signal.SIGTERM)

        await asyncio.gather(*(submit(name) for name in names))

    exit_code = await asyncio.to_thread(served.process.wait, 60)
    assert exit_code == 0, served.log.read_text()[-3000:]
    codes = Counter(code for _, code, _ in finished)
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, (
        codes,
        [(c.name, round(at - signalled_at, 3)) for _, c, at in finished],
    )
    drained = [
        name for name, code, at in finished if code == grpc.StatusCode.OK and at > signalled_at
    ]
    assert drained, f"no call finished after SIGTERM: {codes}"
    submitted = {name for name, code, _ in finished if code == grpc.StatusCode.OK}

    # What the serving relay did not publish before it stopped is still in the outbox: a new
    # relay delivers it, and the partner sees every submitted report exactly once.
    seen: Counter[str] = Counter()

    async def handle(received: Received) -> Answer:
        if received.type == MESSAGE_TYPE_SUBMITTED:
            seen[received.id] += 1
        return Answer.accept()

    relay = platform_process("relay", served.settings, served.nats, tmp_path / "relay.log")
    client = await partner_side(pki).connect(served.nats, PARTNER)
    stop = asyncio.Event()
    listener = asyncio.create_task(listen(client, handle, ProcessedLog(), stop))
    try:

        async def all_seen() -> bool:
            return len(seen) >= len(submitted)

        await eventually(all_seen, within=60, what="every submitted report at the partner")
        await asyncio.sleep(1.0)  # room for a duplicate to show up
    finally:
        stop.set()
        await listener
        await client.close()
        relay.send_signal(signal.SIGTERM)
        relay.wait(timeout=30)
    assert len(seen) == len(submitted)
    assert set(seen.values()) == {1}
