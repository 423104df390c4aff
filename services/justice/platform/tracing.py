"""OpenTelemetry tracing: one trace from a gRPC call through the outbox, NATS and a partner
and back with its receipt.

The W3C `traceparent` travels in gRPC metadata (the `around` below reads it, the client
interceptors write it), in NATS message headers (`carrier`/`continued`), and in the outbox
row between the call that wrote it and the relay that publishes it later, maybe in another
process (`traceparent`).

Each long-running entry point calls `configure_tracing` once. With JUSTICE_OTLP_ENDPOINT
naming a collector it installs the SDK's tracer provider and an OTLP exporter. Without one
nothing is sampled: spans still get ids, which propagate and reach the log lines
(platform/logs.py), but are never recorded, and `IdsOnly` makes them without the SDK.
Without `configure_tracing` at all (a library user, most tests) the API's no-op tracer only
passes incoming contexts on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
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
    if not otlp_endpoint:
        trace.set_tracer_provider(IdsOnly())
        return
    # The SDK's sampler (OTEL_TRACES_SAMPLER, else parent-based always-on).
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    # Imported only when used: the exporter pulls in its generated protobuf modules.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)


class IdsOnly(trace.TracerProvider):
    """Spans that only carry ids, for a process that exports none: what the SDK's sampler
    ALWAYS_OFF gives (a new span id, the parent's trace or a new one, never sampled), at a
    fraction of its cost. GetReport served 5-7 % more calls without the SDK's server span;
    this keeps about half of that, and the ids."""

    def get_tracer(self, *_args: Any, **_kwargs: Any) -> trace.Tracer:
        return _IdsOnlyTracer()

    def shutdown(self) -> None:
        """As the SDK's provider at an entry point's exit: nothing recorded, nothing to flush."""


class _IdsOnlyTracer(trace.Tracer):
    _ids = RandomIdGenerator()

    def start_span(self, name: str, context: Context | None = None, *_a: Any, **_k: Any) -> Span:
        parent = trace.get_current_span(context).get_span_context()
        trace_id = parent.trace_id if parent.is_valid else self._ids.generate_trace_id()
        return NonRecordingSpan(
            SpanContext(
                trace_id,
                self._ids.generate_span_id(),
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.DEFAULT),
                trace_state=parent.trace_state,
            )
        )

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self, name: str, context: Context | None = None, *_a: Any, **_k: Any
    ) -> Iterator[Span]:
        with trace.use_span(self.start_span(name, context), end_on_exit=False) as span:
            yield span


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
        parent = _context_of({key: value for key, value in metadata if key in _TRACE_KEYS})
        # start_span and attach, not start_as_current_span: its three layers of context
        # managers cost GetReport 3 % of its calls.
        span = _tracer.start_span(
            call.method.removeprefix("/"),
            parent,
            SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": call.service,
                "rpc.method": call.method_name,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        # The span records how the call ended as its status code, never as an exception:
        # an abort is not one.
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
            span.end()
            otel_context.detach(token)

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
