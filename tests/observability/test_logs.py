"""Structured logs (issue 21): one JSON object a line with RFC 3339 UTC millisecond timestamps, the request's
context (request_id, trace_id, key id — never the key) and the access fields; a 5xx is logged at ERROR.

Before: five keys a line, second-resolution timestamps without zone, method/path/status packed into the
message and every line at INFO, 5xx included.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from portside.server.app import create_app
from tests.conftest import ADMIN_KEY, make_settings

RFC3339_MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


@pytest.fixture
def restore_loggers() -> Iterator[None]:
    names = ("portside", "uvicorn", "uvicorn.error")
    saved = {
        n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level, logging.getLogger(n).propagate)
        for n in names
    }
    try:
        yield
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


@pytest.fixture
def stream(restore_loggers: None) -> io.StringIO:
    return io.StringIO()


def _capture(stream: io.StringIO) -> None:
    """Point the one handler configure_logging installed at ``stream`` (what it writes to stderr)."""
    handler = logging.getLogger("portside").handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)


@pytest.fixture
async def api(tmp_path: Path, sqlite_url: str, stream: io.StringIO) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(make_settings(tmp_path / "data", sqlite_url, log_level="INFO"), configure_logs=True)
    _capture(stream)

    async def boom() -> None:
        raise RuntimeError("kaboom")

    app.add_api_route("/v1/test-boom", boom, methods=["GET"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://portside", headers=headers) as client:
            yield client


def lines(err: str) -> list[dict[str, Any]]:
    out = []
    for line in err.splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))  # every line is one JSON object
            except ValueError:
                raise AssertionError(f"not a JSON line: {line!r} in {err}") from None
    return out


def access(records: list[dict[str, Any]], path: str) -> dict[str, Any]:
    found = [r for r in records if r["logger"] == "portside.access" and r.get("path") == path]
    assert len(found) == 1, records
    return found[0]


async def test_json_lines_with_request_context(api: httpx.AsyncClient, stream: io.StringIO) -> None:
    stream.truncate(0)
    stream.seek(0)
    missing = await api.get("/v1/sandboxes/sbx_nothere", headers={"traceparent": TRACEPARENT})
    assert missing.status_code == 404
    me = (await api.get("/v1/keys")).json()
    crashed = await api.get("/v1/test-boom", headers={"X-Request-ID": "req-crash-1"})
    assert crashed.status_code == 500 and crashed.headers["x-request-id"] == "req-crash-1"
    err = stream.getvalue()
    assert ADMIN_KEY not in err  # the key id is logged, never the key

    records = lines(err)
    for record in records:
        assert RFC3339_MS_UTC.match(record["ts"]), record["ts"]
        assert {"ts", "level", "logger", "msg"} <= set(record)

    line = access(records, "/v1/sandboxes/sbx_nothere")
    assert line["level"] == "INFO"
    assert line["method"] == "GET" and line["route"] == "/v1/sandboxes/{sandbox_id}" and line["status"] == 404
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["request_id"] == missing.headers["x-request-id"]
    assert line["trace_id"] == TRACE_ID  # the caller's traceparent, even with tracing off
    key_ids = {k["id"] for k in (me["items"] if isinstance(me, dict) else me)}
    assert line["key_id"] in key_ids

    crash = access(records, "/v1/test-boom")
    assert crash["level"] == "ERROR" and crash["status"] == 500 and crash["request_id"] == "req-crash-1"
    traceback = [r for r in records if r["logger"] == "portside.http" and r["level"] == "ERROR"]
    assert traceback and "kaboom" in traceback[0]["exc"] and traceback[0]["request_id"] == "req-crash-1"


def test_text_format_is_still_available(tmp_path: Path, stream: io.StringIO) -> None:
    create_app(make_settings(tmp_path / "data", log_level="INFO", log_format="text"), configure_logs=True)
    _capture(stream)
    logging.getLogger("portside.test").info("hello", extra={"route": "/x"})
    err = stream.getvalue().strip().splitlines()[-1]
    assert RFC3339_MS_UTC.match(err.split(" ", 1)[0]) and "hello" in err and "route=/x" in err
