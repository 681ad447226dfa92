"""Log output: one JSON object a line for machines, plain text on a terminal.

Structured fields travel in `extra=` (`log.info("listening", extra={"listener": "http"})`)
and land as top-level keys of the JSON object, so that operators can filter on them
with jq or their log shipper. Logging must never raise into the daemon: a value that
is not JSON-serialisable is written with `str()`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(record_fields(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """`12:00:01 info  daemon: listening listener=http addresses=[...]` for people."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(f"{k}={v}" for k, v in record_fields(record).items())
        text = f"{stamp} {record.levelname.lower():<7} {record.name}: {record.getMessage()}"
        text = f"{text} {fields}" if fields else text
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(stream: TextIO = sys.stderr, level: int = logging.INFO) -> None:
    """Route every `pilotfish.*` logger to `stream`, JSON unless it is a terminal."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter() if stream.isatty() else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log writes one line per request: far too much for a lookup API.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
