"""Process logging: text for people, or one JSON object per line for log collectors
(JUSTICE_LOG_FORMAT=json).

Log lines carry ids, codes and counts, never personal data or payloads: the modules that
log hold to that, and the operations test searches a whole run's logs for the personal data
it used. The JSON formatter adds nothing from the record beyond its message and origin, so
it cannot leak what a call site did not write. It adds the ids of the span active where the
line was logged (trace_id, span_id, hex as W3C writes them), so a collector joins the lines
of one call, or of one message across processes, to its trace (platform/tracing.py).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

from opentelemetry import trace

__all__ = ["JsonFormatter", "configure_logging"]

_TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Formatted in the thread and context that logged, so the current span is the line's.
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = trace.format_trace_id(span.trace_id)
            line["span_id"] = trace.format_span_id(span.span_id)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(
    log_format: Literal["text", "json"] = "text", level: int = logging.INFO
) -> None:
    """Configure the root logger once, in the entry point."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Python warnings go through the same lines, so a JSON log stays JSON.
    logging.captureWarnings(True)
    # fontTools narrates every font subset (one per fine letter) at INFO.
    logging.getLogger("fontTools").setLevel(logging.WARNING)
