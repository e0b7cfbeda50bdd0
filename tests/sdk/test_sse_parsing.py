"""The SDK parses Server-Sent Events by the spec (httpx-sse), against a real loopback server.

Issue 21: ``client.executions.events()`` read each ``data:`` line as a JSON document of its own, so
an event whose data spans several lines (legal SSE, sent by any proxy or server that pretty-prints)
broke it. The server below sends such events, with ``\\r\\n`` line endings and comments mixed in.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import portside

NODE = {"execution_id": "ex_1", "node_id": "a", "status": "completed", "attempts": 1}
DONE = {"execution_id": "ex_1", "status": "completed"}


def multiline(name: str, payload: dict[str, Any], sep: str = "\n") -> bytes:
    """One event whose JSON data is spread over several ``data:`` lines."""
    lines = json.dumps(payload, indent=2).split("\n")
    return (f"event: {name}{sep}" + "".join(f"data: {line}{sep}" for line in lines) + sep).encode()


EXECUTION_STREAM = (
    b": connected\n\n" + multiline("node", NODE) + b": ping\r\n\r\n" + multiline("execution", DONE, sep="\r\n")
)


@contextmanager
def sse_server(routes: dict[str, list[bytes]], posts: list[tuple[str, Any]]) -> Iterator[str]:
    """GET ``path`` answers the next body of ``routes[path]`` (the last repeats) as an event stream;
    every POST is recorded and answered ``{}``."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            with lock:
                bodies = routes.get(path)
                body = (bodies.pop(0) if len(bodies) > 1 else bodies[0]) if bodies else None
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            with lock:
                posts.append((self.path, json.loads(raw) if raw else None))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_sync_execution_events_join_multiline_data() -> None:
    with sse_server({"/v1/executions/ex_1/events": [EXECUTION_STREAM]}, []) as url:
        with portside.Client(url, "sk_x") as client:
            events = list(client.executions.events("ex_1"))
    assert [(e.event, e.data) for e in events] == [("node", NODE), ("execution", DONE)]


async def test_async_execution_events_join_multiline_data() -> None:
    with sse_server({"/v1/executions/ex_1/events": [EXECUTION_STREAM]}, []) as url:
        async with portside.AsyncClient(url, "sk_x") as client:
            events = [e async for e in client.executions.events("ex_1")]
    assert [(e.event, e.data) for e in events] == [("node", NODE), ("execution", DONE)]


async def test_worker_runs_a_lease_sent_as_multiline_data() -> None:
    lease = {
        "leaseId": "lease_1",
        "taskId": "task_1",
        "capability": "test/echo",
        "input": {"text": "line one\nline two"},
        "attempt": 1,
        "expiresAt": "2099-01-01T00:00:00Z",
    }
    first = b": connected\n\n" + multiline("leases", {"type": "leases", "leases": [lease]})
    posts: list[tuple[str, Any]] = []
    seen: list[Any] = []
    with sse_server({"/v1/workers/w-1/events": [first, b": connected\n\n"]}, posts) as url:
        worker = portside.Worker(url, "sk_x", worker_id="w-1", heartbeat_interval=30, initial_reconnect_delay=0.05)

        @worker.handler("test/echo")
        async def echo(value: Any, ctx: portside.TaskContext) -> Any:
            seen.append(value)
            return value

        await worker.start()
        try:
            for _ in range(200):
                if any(path.endswith("/results") for path, _ in posts):
                    break
                await asyncio.sleep(0.05)
        finally:
            await worker.stop(timeout=5)
    assert seen == [lease["input"]]
    results = [r for path, body in posts if path.endswith("/results") for r in body["results"]]
    assert results == [{"leaseId": "lease_1", "type": "ack", "output": lease["input"]}]
