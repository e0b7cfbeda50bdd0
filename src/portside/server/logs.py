"""Structured logging: one JSON object a line (default) or readable text, request context on every record.

Every record carries ``ts`` (RFC 3339, UTC, milliseconds, ``Z``), ``level``, ``logger``, ``msg``,
and inside a request ``request_id``, ``trace_id`` (the W3C trace id: OpenTelemetry's current span, or
the caller's ``traceparent`` when tracing is off) and ``key_id`` (the id of the API key that
authenticated, never the key). The access line of each request (logger ``portside.access``) adds
``method``, ``route`` (the route template), ``path``, ``status`` and ``duration_ms``; it is logged at
ERROR for a 5xx, else INFO. Fields passed with ``extra={...}`` are written as they are.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


@dataclass
class RequestLogContext:
    """Mutable per-request fields (filled in as the request learns them, e.g. the key id after auth)."""

    request_id: str
    trace_id: str | None = None
    key_id: str | None = None


request_context_var: contextvars.ContextVar[RequestLogContext | None] = contextvars.ContextVar(
    "request_log_context", default=None
)

#: attributes every LogRecord has; anything else on a record came from ``extra=`` and is written out
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_CONTEXT_FIELDS = ("request_id", "trace_id", "key_id")


def note_key_id(key_id: str) -> None:
    """Record the authenticated key's id for the current request's log lines."""
    current = request_context_var.get()
    if current is not None:
        current.key_id = key_id


def rfc3339_ms(created: float) -> str:
    """``2024-05-01T12:34:56.789Z`` for a Unix time."""
    seconds = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        current = request_context_var.get()
        if current is not None:
            for name in _CONTEXT_FIELDS:
                if not hasattr(record, name):
                    setattr(record, name, getattr(current, name))
        elif not hasattr(record, "request_id"):
            rid = request_id_var.get()
            if rid != "-":
                record.request_id = rid
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": rfc3339_ms(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and value is not None and not name.startswith("_"):
                payload[name] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger [request_id] message key=value ...`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{name}={value}"
            for name, value in vars(record).items()
            if name not in _STANDARD and name != "request_id" and value is not None and not name.startswith("_")
        )
        line = (
            f"{rfc3339_ms(record.created)} {record.levelname:<7} {record.name} "
            f"[{getattr(record, 'request_id', '-')}] {record.getMessage()}"
        )
        if extras:
            line += " " + extras
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "INFO", *, log_format: str = "json", json_lines: bool | None = None) -> None:
    """Route Portside's and uvicorn's loggers through one handler on stderr.

    ``log_format`` is ``json`` (one object a line) or ``text``; ``json_lines`` is the older switch
    (``PORTSIDE_LOG_JSON``) and wins when given.
    """
    if json_lines is not None:
        log_format = "json" if json_lines else "text"
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger("portside")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        server_log = logging.getLogger(name)
        server_log.handlers[:] = [handler]
        server_log.propagate = False
