"""OpenTelemetry tracing: one trace from a gRPC call through the outbox, NATS and a partner
and back with its receipt.

The W3C `traceparent` travels in gRPC metadata (the `around` below reads it, the client
interceptors write it), in NATS message headers (`carrier`/`continued`), and in the outbox
row between the call that wrote it and the relay that publishes it later, maybe in another
process (`traceparent`).

Each long-running entry point calls `configure_tracing` once. It installs the SDK's tracer
provider, so spans get ids and log lines carry them (platform/logs.py), and an OTLP exporter
only when JUSTICE_OTLP_ENDPOINT names a collector. Without an exporter nothing is sampled:
spans still get ids, which propagate and reach the logs, but are never recorded (CPU per
RPC for the server span, measured: ~25 µs unsampled, ~60 µs recorded without an exporter,
~15 µs with the API's no-op tracer; a GetReport costs ~1 ms). Without `configure_tracing`
at all (a library user, most tests) the API's no-op tracer only passes incoming contexts on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from justice.platform.rpc import Around, Call, code_name, metadata_interceptors

__all__ = [
    "SpanContext",
    "SpanKind",
    "carrier",
    "client_interceptors",
    "configure_tracing",
    "continued",
    "server_spans",
    "traceparent",
]

log = logging.getLogger(__name__)

_tracer = trace.get_tracer("justice")
# W3C Trace Context only: traceparent and tracestate, nothing else crosses a boundary.
_propagator = TraceContextTextMapPropagator()
_TRACE_KEYS = frozenset(_propagator.fields)


def configure_tracing(otlp_endpoint: str, service_name: str) -> None:
    """Once per process, at its entry point: spans with ids, exported over OTLP/gRPC to
    `otlp_endpoint` (e.g. http://otel-collector:4317) when it is not empty."""
    # With an exporter, the SDK's sampler (OTEL_TRACES_SAMPLER, else parent-based always-on).
    sampler = None if otlp_endpoint else ALWAYS_OFF
    provider = TracerProvider(
        sampler=sampler, resource=Resource.create({"service.name": service_name})
    )
    if otlp_endpoint:
        # Imported only when used: the exporter pulls in its generated protobuf modules.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)


# -- carrying the context across a boundary ------------------------------------------------------


def carrier() -> dict[str, str]:
    """The current trace context as headers (empty when no span is active)."""
    headers: dict[str, str] = {}
    _propagator.inject(headers)
    return headers


def traceparent() -> str:
    """The current span's W3C traceparent, or "" (what the outbox keeps with a row)."""
    return carrier().get("traceparent", "")


def _context_of(headers: Mapping[str, str] | None) -> Context:
    # Extracted onto an empty context: a message's trace never inherits whatever span the
    # loop that received it happens to be in.
    if not headers:
        return Context()
    return _propagator.extract({k: v for k, v in headers.items() if k in _TRACE_KEYS}, Context())


def _context_with(parent: SpanContext) -> Context:
    return trace.set_span_in_context(NonRecordingSpan(parent), Context())


@contextmanager
def continued(
    name: str,
    headers: Mapping[str, str] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    after: Sequence[SpanContext] = (),
) -> Iterator[Span]:
    """A span continuing the trace `headers` carry (a new trace without them), or, with
    `after`, the first of those spans' trace, linked to the others (a receipt settles a
    batch of messages from several traces)."""
    context = _context_with(after[0]) if after else _context_of(headers)
    links = [Link(other) for other in after[1:]]
    with _tracer.start_as_current_span(name, context, kind, links=links) as span:
        yield span


# -- gRPC ------------------------------------------------------------------------------------------


def server_spans() -> Around:
    """A SERVER span per RPC, continuing the caller's traceparent; put it outermost, so
    every log line of the call carries its ids."""

    @asynccontextmanager
    async def around(call: Call) -> AsyncIterator[None]:
        metadata: Any = call.context.invocation_metadata() or ()
        incoming = {key: value for key, value in metadata if key in _TRACE_KEYS}
        with _tracer.start_as_current_span(
            call.method.removeprefix("/"),
            _context_of(incoming),
            SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": call.service,
                "rpc.method": call.method_name,
            },
            # The status code says how the call ended; an abort is not an exception to record.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            code: object = grpc.StatusCode.OK
            try:
                yield
                code = call.context.code() or grpc.StatusCode.OK
            except BaseException:
                code = call.context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                name = code_name(code)
                span.set_attribute("rpc.grpc.status_code", name)
                log.debug("rpc %s ended %s", call.method, name)

    return around


def client_interceptors() -> list[Any]:
    """Interceptors that put the current trace context into every call's metadata."""
    return metadata_interceptors(_carrier_pairs)


def _carrier_pairs() -> list[tuple[str, str]]:
    return list(carrier().items())


def with_trace(pairs: Sequence[tuple[str, str]]) -> Callable[[], list[tuple[str, str]]]:
    """Fixed metadata pairs, followed by the current trace context at each call."""
    fixed = list(pairs)
    return lambda: fixed + _carrier_pairs()
