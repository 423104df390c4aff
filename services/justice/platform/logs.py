"""Process logging: text for people, or one JSON object per line for log collectors
(JUSTICE_LOG_FORMAT=json).

Log lines carry ids, codes and counts, never personal data or payloads: the modules that
log hold to that, and the operations test searches a whole run's logs for the personal data
it used. The JSON formatter adds nothing from the record beyond its message and origin, so
it cannot leak what a call site did not write.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

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
