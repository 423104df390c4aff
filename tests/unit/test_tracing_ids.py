"""Spans of a process that exports none (platform/tracing.IdsOnly): ids that continue the
caller's trace and reach what the call sends on, never sampled."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from justice.platform.tracing import IdsOnly, carrier

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
propagator = TraceContextTextMapPropagator()
tracer = IdsOnly().get_tracer("test")


def test_a_span_continues_the_callers_trace_with_a_span_id_of_its_own() -> None:
    incoming = propagator.extract({"traceparent": CALLER, "tracestate": "ro=1"}, Context())
    span = tracer.start_span("GetReport", incoming).get_span_context()
    assert trace.format_trace_id(span.trace_id) == "0af7651916cd43dd8448eb211c80319c"
    assert span.span_id not in (0, 0xB7AD6B7169203331)
    assert not span.trace_flags.sampled
    assert span.trace_state.get("ro") == "1"


def test_without_a_caller_each_span_starts_a_trace_of_its_own() -> None:
    first = tracer.start_span("a", Context()).get_span_context()
    second = tracer.start_span("b", Context()).get_span_context()
    assert first.is_valid
    assert second.is_valid
    assert first.trace_id != second.trace_id


def test_the_current_span_is_what_a_call_sends_on_and_ends_with_its_block() -> None:
    assert carrier() == {}
    with tracer.start_as_current_span("SubmitReport") as span:
        ids = span.get_span_context()
        sent = carrier()["traceparent"]
    assert sent == (
        f"00-{trace.format_trace_id(ids.trace_id)}-{trace.format_span_id(ids.span_id)}-00"
    )
    assert carrier() == {}
