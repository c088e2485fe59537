"""Structured JSON logs on stdout, with personal data redacted before it is written.

Every record passes through the same formatter, including Flask's, werkzeug's and gunicorn's
(they propagate to the root logger configured here) and uncaught exceptions in threads.
Tracebacks get a stricter pass than messages: besides the PII rules, any long run of digits
is masked, because a value quoted in an exception (a half-typed CPF, an account number in
PostgreSQL's error context) need not pass a check-digit test to be personal.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_DIGIT_RUN = re.compile(r"(?<![\w-])\d(?:[\d.\-/ ]{4,}\d)(?![\w-])")
_THIRD_PARTY = ("werkzeug", "flask.app", "gunicorn.error", "functions_framework")


def redact_exception(text: str) -> str:
    from harvey.pii import redact_for_log

    return _DIGIT_RUN.sub("[DIGITS]", redact_for_log(text))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from harvey.pii import redact_for_log

        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_for_log(_message(record)),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = redact_for_log(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact_exception(self.formatException(record.exc_info))
        # ensure_ascii=False keeps Portuguese readable; a lone surrogate (hostile input) is escaped
        # instead of making the stream's UTF-8 encoder fail.
        return json.dumps(entry, ensure_ascii=False, default=str).encode("utf-8", "backslashreplace").decode()


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 - a bad %-format must not lose the record
        return str(record.msg)


class _Handler(logging.StreamHandler):
    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """The stdlib prints the record and a raw traceback to stderr here: personal data unredacted.
        Say only that a record was lost."""
        lost = {"level": "ERROR", "logger": "harvey.logs", "message": f"a record of {record.name} was lost"}
        sys.stderr.write(json.dumps(lost) + "\n")


def setup(level: str = "INFO", stream=None) -> None:
    """Route the harvey loggers (and the frameworks' ones) to stdout (or `stream`) as JSON, once.

    Functions log to stdout, where Knative collects it; the CLI passes stderr so that
    its own output (e.g. `--json`) stays parseable.
    """
    root = logging.getLogger("harvey")
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = _Handler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    top = logging.getLogger()
    if not top.handlers:
        top.addHandler(handler)
        top.setLevel(logging.WARNING)
    for name in _THIRD_PARTY:  # drop their own stderr handlers so nothing bypasses redaction
        logging.getLogger(name).handlers.clear()
    threading.excepthook = _thread_exception


def _thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("harvey.threads").error(
        "uncaught exception in a thread",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
        extra={"thread_name": getattr(args.thread, "name", None)},
    )
