"""Spans recorded in memory: the SDK's tracer provider with an InMemorySpanExporter,
installed once for the test process (OpenTelemetry allows one global provider)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter: InMemorySpanExporter | None = None


def recorded_spans() -> InMemorySpanExporter:
    """The process's in-memory exporter; every span that ends from now on lands in it."""
    global _exporter
    if _exporter is None:
        _exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    return _exporter


def spans_of(exporter: InMemorySpanExporter, trace_id: int) -> dict[str, ReadableSpan]:
    """The finished spans of one trace, by name (the first of each name)."""
    found: dict[str, ReadableSpan] = {}
    for span in exporter.get_finished_spans():
        if span.context is not None and span.context.trace_id == trace_id:
            found.setdefault(span.name, span)
    return found
