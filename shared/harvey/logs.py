"""Structured JSON logs on stdout, with personal data redacted before it is written."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from harvey.pii import redact_for_log

        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_for_log(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = redact_for_log(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact_for_log(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup(level: str = "INFO", stream=None) -> None:
    """Route the harvey loggers to stdout (or `stream`) as JSON, once.

    Functions log to stdout, where Knative collects it; the CLI passes stderr so that
    its own output (e.g. `--json`) stays parseable.
    """
    root = logging.getLogger("harvey")
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
