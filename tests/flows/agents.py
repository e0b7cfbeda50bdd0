"""Real local HTTP agents for flow tests: a threaded stdlib server speaking AI Spine's agent contract.

Portside POSTs ``{"execution_id","node_id","input","config",...}`` to ``<endpoint>/execute`` and
reads ``{"output": ...}``. Each agent is a path prefix: ``<base>/<name>/execute``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, Any, float]  # status, JSON body, delay before answering
Behaviour = Callable[[dict[str, Any]], Reply]


def echo(payload: dict[str, Any]) -> Reply:
    return 200, {"output": {"echo": payload["input"], "node": payload["node_id"]}}, 0.0


def upper(payload: dict[str, Any]) -> Reply:
    text = str(payload["input"].get("text", ""))
    return 200, {"output": {"text": text.upper(), "upper_by": payload["node_id"]}}, 0.0


def count_words(payload: dict[str, Any]) -> Reply:
    text = str(payload["input"].get("text", ""))
    return 200, {"output": {"words": len(text.split())}}, 0.0


def fail500(payload: dict[str, Any]) -> Reply:
    return 500, {"error": "boom"}, 0.0


def slow(seconds: float, output: Any = None) -> Behaviour:
    def _b(payload: dict[str, Any]) -> Reply:
        return 200, {"output": output if output is not None else {"slept": seconds}}, seconds

    return _b


def flaky(failures: int) -> Behaviour:
    """Fail with 503 ``failures`` times per node, then succeed."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def _b(payload: dict[str, Any]) -> Reply:
        with lock:
            seen[payload["node_id"]] += 1
            n = seen[payload["node_id"]]
        if n <= failures:
            return 503, {"error": f"try again ({n})"}, 0.0
        return 200, {"output": {"ok": True, "calls": n}}, 0.0

    return _b


class AgentServer:
    """A threaded HTTP server hosting named agents; records every call."""

    def __init__(self) -> None:
        self.behaviours: dict[str, Behaviour] = {
            "echo": echo,
            "upper": upper,
            "count": count_words,
            "fail500": fail500,
        }
        self.calls: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.active = 0
        self.max_active = 0
        self.aborted = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                name = self.path.strip("/").split("/")[0]
                behaviour = server.behaviours.get(name)
                with server._lock:
                    server.calls.append((name, payload, dict(self.headers)))
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    if behaviour is None or not self.path.endswith("/execute"):
                        status, body, delay = 404, {"error": "no such agent"}, 0.0
                    else:
                        status, body, delay = behaviour(payload)
                    if delay:
                        time.sleep(delay)
                    data = json.dumps(body).encode()
                    try:
                        self.send_response(status)
                        self.send_header("content-type", "application/json")
                        self.send_header("content-length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):
                        with server._lock:
                            server.aborted += 1
                finally:
                    with server._lock:
                        server.active -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def endpoint(self, name: str) -> str:
        return f"{self.url}/{name}"

    def count(self, name: str, node_id: str | None = None) -> int:
        with self._lock:
            return sum(1 for n, p, _ in self.calls if n == name and (node_id is None or p.get("node_id") == node_id))

    def start(self) -> AgentServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def running_agents() -> Iterator[AgentServer]:
    server = AgentServer().start()
    try:
        yield server
    finally:
        server.stop()
