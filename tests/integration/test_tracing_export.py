"""`configure_tracing` as an entry point calls it, in a process of its own (one tracer
provider per process): spans reach an OTLP collector only when an endpoint is set; without
one they still have ids but are not recorded."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as otlp_grpc

from tests.eventually import eventually

# What an entry point does, then one span, then the provider's shutdown (which flushes).
PROCESS = """
import sys
from opentelemetry import trace
from justice.platform import tracing

tracing.configure_tracing(sys.argv[1], "export-test")
with tracing.continued("exported") as span:
    context = span.get_span_context()
    print(trace.format_trace_id(context.trace_id), context.is_valid, span.is_recording())
trace.get_tracer_provider().shutdown()
"""


class Collector(otlp_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []  # (trace id hex, name)

    async def Export(
        self, request: otlp.ExportTraceServiceRequest, context: Any
    ) -> otlp.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.spans += [(span.trace_id.hex(), span.name) for span in scope.spans]
        return otlp.ExportTraceServiceResponse()


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, int]]:
    server = grpc.aio.server()
    received = Collector()
    otlp_grpc.add_TraceServiceServicer_to_server(received, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield received, port
    await server.stop(None)


async def _run(endpoint: str) -> list[str]:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", PROCESS, endpoint],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


async def test_spans_reach_the_otlp_collector_when_an_endpoint_is_set(
    collector: tuple[Collector, int],
) -> None:
    received, port = collector
    trace_id, valid, recording = await _run(f"http://127.0.0.1:{port}")
    assert (valid, recording) == ("True", "True")

    async def exported() -> bool:
        return (trace_id, "exported") in received.spans

    await eventually(exported, within=20, what="the span at the collector")


async def test_without_an_endpoint_spans_have_ids_but_are_not_recorded() -> None:
    trace_id, valid, recording = await _run("")
    # Ids for the headers and the log lines; nothing recorded, so nothing to export.
    assert (valid, recording) == ("True", "False")
    assert int(trace_id, 16) != 0
