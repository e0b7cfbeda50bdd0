"""Tracing: one trace from the API through the task, the worker's handler and its result (issue 21).

The real app on a loopback server and a real ``portside.Worker`` in this process, spans collected by the
OpenTelemetry SDK's in-memory exporter. Before this, an incoming ``traceparent`` was ignored and no span
was recorded anywhere.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import portside
from portside.server import tracing
from tests.conftest import ADMIN_KEY, LiveServer, make_settings

pytestmark = pytest.mark.timeout(120)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def server(tmp_path: Path, spans: InMemorySpanExporter) -> Iterator[LiveServer]:
    srv = LiveServer(make_settings(tmp_path / "data")).start()
    try:
        yield srv
    finally:
        srv.stop()


def _post(url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data, {**headers, "Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status), json.loads(response.read())


def _hex(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def _parent(span: ReadableSpan) -> str | None:
    return format(span.parent.span_id, "016x") if span.parent is not None else None


async def _wait_for(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    for _ in range(200):
        found = [s for s in exporter.get_finished_spans() if s.name == name]
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no span {name!r} in {[s.name for s in exporter.get_finished_spans()]}")


async def test_one_trace_spans_api_task_worker_and_result(server: LiveServer, spans: InMemorySpanExporter) -> None:
    assert tracing.enabled()
    worker = portside.Worker(server.url, ADMIN_KEY, worker_id="traced", heartbeat_interval=0.5)
    seen: dict[str, Any] = {}

    @worker.handler("obs/echo")
    async def echo(inp: Any, ctx: portside.TaskContext) -> Any:
        seen["traceparent"] = ctx.traceparent
        return {"echo": inp}

    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "traceparent": INCOMING}
    async with worker, httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as api:
        await worker.wait_registered(10)
        # urllib: a client without OpenTelemetry, so the traceparent header is exactly the caller's
        status, body = await asyncio.to_thread(
            _post, f"{server.url}/v1/tasks", {"capability": "obs/echo", "input": {"n": 1}}, headers
        )
        assert status == 201, body
        task_id = body["id"]
        done = await api.get(f"/v1/tasks/{task_id}/wait", params={"timeout": 20})
        assert done.json()["status"] == "succeeded", done.text
        result_span = (await _wait_for(spans, "task.result obs/echo"))[0]

    finished = spans.get_finished_spans()
    by_name = {s.name: s for s in finished if _hex(s)[0] == TRACE_ID}
    # the API's server span continues the caller's trace
    api_span = next(s for s in finished if s.name.startswith("POST /v1/tasks") and s.kind.name == "SERVER")
    assert _hex(api_span)[0] == TRACE_ID and _parent(api_span) == "00f067aa0ba902b7"
    submit = by_name["task.submit obs/echo"]
    handler = by_name["task obs/echo"]
    assert handler.kind.name == "CONSUMER" and handler.attributes is not None
    assert handler.attributes["portside.task.id"] == task_id
    # API -> submit -> worker handler -> result, all one trace, each the child of the one before
    assert _hex(submit)[0] == _hex(handler)[0] == _hex(result_span)[0] == TRACE_ID
    assert _parent(handler) == _hex(submit)[1]
    assert _parent(result_span) == _hex(handler)[1]
    assert seen["traceparent"] == f"00-{TRACE_ID}-{_hex(submit)[1]}-01"
    # the store's queries are traced too (SQLAlchemy instrumentation)
    assert any(
        (s.attributes and "db.system" in s.attributes) or "db.system.name" in (s.attributes or {}) for s in finished
    )


async def test_tracing_is_off_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTSIDE_TRACING", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    tracing.shutdown()
    assert not tracing.wanted()
    srv = LiveServer(make_settings(tmp_path / "data")).start()
    try:
        assert not tracing.enabled()
        assert tracing.inject({"a": 1}) == {"a": 1}
        assert tracing.span("x") is tracing.span("y")  # one shared no-op
    finally:
        srv.stop()
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.wanted({"PORTSIDE_TRACING": "true"})
    assert not tracing.wanted({"PORTSIDE_TRACING": "off", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})


@pytest.mark.bwrap
async def test_flow_nodes_and_sandbox_exec_join_the_callers_trace(
    server: LiveServer, spans: InMemorySpanExporter
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "traceparent": INCOMING}
    flow = {"flow_id": "traced", "nodes": [{"id": "a", "type": "noop"}]}
    assert (await asyncio.to_thread(_post, f"{server.url}/v1/flows", flow, headers))[0] in (200, 201)
    status, _ = await asyncio.to_thread(
        _post, f"{server.url}/flows/execute", {"flow_id": "traced", "input_data": {}}, headers
    )
    assert status in (200, 201, 202)
    execution = (await _wait_for(spans, "flow.execution traced"))[0]
    node = (await _wait_for(spans, "flow.node a"))[0]
    assert _hex(execution)[0] == _hex(node)[0] == TRACE_ID and _parent(node) == _hex(execution)[1]

    status, sandbox = await asyncio.to_thread(
        _post, f"{server.url}/v1/sandboxes", {"profile": "shell-minimal"}, headers
    )
    assert status == 201
    sid = sandbox["id"]
    status, ran = await asyncio.to_thread(
        _post, f"{server.url}/v1/sandboxes/{sid}/shell/exec", {"command": "echo hi"}, headers
    )
    assert status == 200 and ran["success"]
    exec_span = (await _wait_for(spans, "sandbox.exec"))[0]
    assert _hex(exec_span)[0] == TRACE_ID and exec_span.attributes is not None
    assert exec_span.attributes["portside.sandbox.id"] == sid and exec_span.attributes["portside.exec.outcome"] == "ok"
    assert (await _wait_for(spans, "sandbox.create"))[0].attributes["portside.sandbox.profile"] == "shell-minimal"  # type: ignore[index]
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as api:
        await api.delete(f"/v1/sandboxes/{sid}")
