"""A three-agent flow: the agents are small local HTTP services this example starts itself.

    portside serve &                       # or `make run`; prints the admin key
    python examples/flows_three_agents.py  # PORTSIDE_URL / PORTSIDE_API_KEY, or ./.portside/admin_key

Agents speak AI Spine's agent contract: Portside POSTs ``{"execution_id", "node_id", "input",
"config"}`` to ``<endpoint>/execute`` and reads ``{"output": {...}}``. The flow runs ``keywords``
and ``sentiment`` in parallel on the input text, then ``writer`` drafts a summary from both.
It is run twice: with the Portside SDK, and with the unmodified ai-spine-sdk (when installed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import portside

Agent = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
STOP = {"the", "a", "an", "and", "or", "of", "to", "in", "is", "it", "for", "on", "with", "this", "that"}
POSITIVE = {"great", "good", "love", "fast", "happy", "excellent", "reliable", "easy"}
NEGATIVE = {"bad", "slow", "hate", "broken", "sad", "poor", "hard", "crash"}


def keywords(data: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    words = [w for w in re.findall(r"[a-z']+", str(data.get("text", "")).lower()) if w not in STOP]
    top = [w for w, _ in Counter(words).most_common(int(config.get("top", 3)))]
    return {"keywords": top}


def sentiment(data: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    words = re.findall(r"[a-z']+", str(data.get("text", "")).lower())
    score = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
    return {"sentiment": "positive" if score > 0 else "negative" if score < 0 else "neutral", "score": score}


def writer(data: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    topics = ", ".join(data.get("keywords", [])) or "nothing in particular"
    return {"summary": f"A {data.get('sentiment', 'neutral')} note about {topics}."}


AGENTS: dict[str, Agent] = {"keywords": keywords, "sentiment": sentiment, "writer": writer}


@contextmanager
def agent_services() -> Iterator[str]:
    """Serve every agent under ``http://127.0.0.1:<port>/<name>``; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            name = self.path.strip("/").split("/")[0]
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            agent = AGENTS.get(name)
            status, reply = (200, {"output": agent(body["input"], body.get("config") or {})}) if agent else (404, {})
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def flow_definition() -> dict[str, Any]:
    return {
        "flow_id": "note_summary",
        "name": "Note summary",
        "description": "keywords and sentiment in parallel, then a one-line summary",
        "entry_point": "note",
        "exit_points": ["summary"],
        "nodes": [
            {"id": "note", "type": "input"},
            {"id": "topics", "type": "processor", "agent_id": "keywords", "depends_on": ["note"], "config": {"top": 2}},
            {"id": "mood", "type": "processor", "agent_id": "sentiment", "depends_on": ["note"]},
            {"id": "summary", "type": "output", "agent_id": "writer", "depends_on": ["topics", "mood"]},
        ],
    }


def run(url: str, api_key: str, text: str) -> dict[str, Any]:
    """Register the agents and the flow, run it with both SDKs; returns the Portside execution's output."""
    with agent_services() as base, portside.Client(url, api_key) as client:
        for name in AGENTS:
            try:
                client.agents.create(id=name, name=name.title(), endpoint=f"{base}/{name}", type="processor")
            except portside.ConflictError:
                client.agents.update(name, endpoint=f"{base}/{name}")
        client.flows.upsert(flow_definition())
        execution = client.flows.run("note_summary", {"text": text}, timeout=60)
        print(f"portside SDK: {execution.status} in {execution.duration_ms} ms")
        for node in execution.nodes:
            print(f"  {node.node_id:<8} {node.status:<10} {node.execution_time_ms} ms")
        print("  output:", json.dumps(execution.output_data))
        try:
            import ai_spine
        except ImportError:
            return dict(execution.output_data or {})
        with ai_spine.AISpine(api_key=api_key, base_url=url) as spine:
            result = spine.execute_and_wait("note_summary", {"text": text}, timeout=60, interval=1)
            print(f"ai-spine-sdk: {result['status']}, output: {json.dumps(result['output_data'])}")
        return dict(execution.output_data or {})


def _default_key() -> str | None:
    path = Path(os.environ.get("PORTSIDE_DATA_DIR", ".portside")) / "admin_key"
    return os.environ.get("PORTSIDE_API_KEY") or (path.read_text().strip() if path.exists() else None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("PORTSIDE_URL", "http://127.0.0.1:8321"))
    parser.add_argument("--api-key", default=_default_key())
    parser.add_argument("--text", default="Portside is fast and reliable; I love the fast sandboxes.")
    args = parser.parse_args()
    if not args.api_key:
        raise SystemExit("no API key: set PORTSIDE_API_KEY or run next to the server's .portside directory")
    run(args.url, args.api_key, args.text)
