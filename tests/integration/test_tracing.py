"""One trace from a SubmitReport call through the outbox relay, NATS and the partner, back
with the partner's receipt; and the trace's ids on the JSON log lines of a call."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from justice.app import Application
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.partner.client import ProcessedLog, listen
from justice.partner.simulator import ProsecutorSimulator
from justice.platform import tracing
from justice.platform.logs import JsonFormatter
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from tests.api.conftest import client_credentials
from tests.builders import signed_report
from tests.eventually import eventually
from tests.exchange_env import (
    partner_record,
    partner_side,
    serve_platform,
    stop_platform,
)
from tests.tracing_env import recorded_spans, spans_of

PROSECUTOR = "prosecutor-antwerp"
PURPOSE = (("x-justice-purpose", "tracing test"),)
SUBMIT = "justice.reports.v1.ReportService/SubmitReport"

tracer = trace.get_tracer(__name__)


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    return recorded_spans()


@pytest.fixture(scope="module")
async def platform(
    spans: InMemorySpanExporter,
    pki: DevPki,
    exchange_nats: NatsServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Application]:
    tmp = tmp_path_factory.mktemp("tracing")
    application = await serve_platform(
        pki, exchange_nats, tmp / "state", f"sqlite+aiosqlite:///{tmp / 'justice.db'}"
    )
    await application.exchange.service.create_partner(partner_record(pki, PROSECUTOR))
    yield application
    await stop_platform(application)


@pytest.fixture
async def reports(
    platform: Application, pki: DevPki
) -> AsyncIterator[reports_pb2_grpc.ReportServiceStub]:
    # The client interceptors put the caller's trace context into every call's metadata.
    async with grpc.aio.secure_channel(
        f"localhost:{platform.server.port}",
        client_credentials(pki, "officer-1001"),
        interceptors=tracing.client_interceptors(),
    ) as channel:
        yield reports_pb2_grpc.ReportServiceStub(channel)


def _parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_one_trace_spans_the_call_the_relay_the_partner_and_the_receipt(
    platform: Application,
    reports: reports_pb2_grpc.ReportServiceStub,
    pki: DevPki,
    exchange_nats: NatsServer,
    spans: InMemorySpanExporter,
) -> None:
    name = await signed_report(platform)
    with tracer.start_as_current_span("caller") as caller:
        await reports.SubmitReport(pb.SubmitReportRequest(name=name, recipient=PROSECUTOR))
    trace_id = caller.get_span_context().trace_id

    client = await partner_side(pki).connect(exchange_nats, PROSECUTOR)
    stop = asyncio.Event()
    task = asyncio.create_task(
        listen(client, ProsecutorSimulator(client).handle, ProcessedLog(), stop)
    )
    try:

        async def receipt_handled() -> dict[str, ReadableSpan] | None:
            found = spans_of(spans, trace_id)
            return found if "inbound receipt" in found else None

        found = await eventually(receipt_handled, within=30, what="the receipt's span")
    finally:
        stop.set()
        await task
        await client.close()

    # Each step is the child of the one before, across the outbox row (the relay), the NATS
    # headers (the partner) and the receipt's headers (back on the platform).
    chain = [
        "caller",
        SUBMIT,
        "publish report_submitted",
        "partner handle report_submitted",
        "partner receipt",
        "inbound receipt",
    ]
    assert set(chain) <= set(found), sorted(found)
    for parent, child in itertools.pairwise(chain):
        assert _parent_of(found[child]) == found[parent].context.span_id, (parent, child)
    assert found[SUBMIT].kind is trace.SpanKind.SERVER
    assert found[SUBMIT].attributes["rpc.grpc.status_code"] == "OK"
    assert found["publish report_submitted"].kind is trace.SpanKind.PRODUCER


async def test_json_log_lines_of_a_call_carry_its_trace_and_span_ids(
    platform: Application,
    reports: reports_pb2_grpc.ReportServiceStub,
    spans: InMemorySpanExporter,
) -> None:
    name = await signed_report(platform)
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    # The server span's own line (DEBUG); any line logged during the call would do.
    logger = logging.getLogger("justice.platform.tracing")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with tracer.start_as_current_span("caller") as caller:
            await reports.GetReport(pb.GetReportRequest(name=name), metadata=PURPOSE)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    trace_id = caller.get_span_context().trace_id
    server = spans_of(spans, trace_id)["justice.reports.v1.ReportService/GetReport"]

    logged = [json.loads(line) for line in lines.getvalue().splitlines()]
    ours = [line for line in logged if "GetReport" in line["message"]]
    assert ours, logged
    for line in ours:
        assert line["trace_id"] == trace.format_trace_id(trace_id)
        assert line["span_id"] == trace.format_span_id(server.context.span_id)
    # A line logged outside any span carries no ids.
    handler.setStream(lines := io.StringIO())
    logger.addHandler(handler)
    try:
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    assert "trace_id" not in json.loads(lines.getvalue())
