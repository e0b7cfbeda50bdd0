"""A flow mixing a worker task and a sandbox ``python`` node.

    portside serve &
    python examples/flows_task_python.py   # PORTSIDE_URL / PORTSIDE_API_KEY, or ./.portside/admin_key

The example runs a ``portside.Worker`` serving the capability ``examples/text/tokenize``; the
flow sends the input text to it as a task, then a ``python`` node computes statistics over the
tokens inside a sandbox (``input`` is bound in the sandbox; whatever it assigns to ``output`` is the
node's output), and a ``condition`` node decides whether a ``map`` fans out over the long words.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import portside

CAPABILITY = "examples/text/tokenize"

STATS = """
tokens = input["tokens"]
lengths = [len(t) for t in tokens]
output = {
    "count": len(tokens),
    "mean_length": round(sum(lengths) / len(lengths), 2) if lengths else 0,
    "long_words": sorted({t for t in tokens if len(t) >= 7}),
}
print("computed in the sandbox")
"""

FLOW: dict[str, Any] = {
    "flow_id": "text_stats",
    "name": "Text statistics",
    "nodes": [
        {"id": "text", "type": "input"},
        {"id": "tokens", "type": "task", "capability": CAPABILITY, "depends_on": ["text"]},
        {"id": "stats", "type": "python", "code": STATS, "depends_on": ["tokens"]},
        {
            "id": "has_long",
            "type": "condition",
            "expression": "len(nodes.stats.output.long_words) > 0",
            "depends_on": ["stats"],
        },
        {
            "id": "shout",
            "type": "map",
            "depends_on": ["has_long"],
            "when": "nodes.has_long.output.result",
            "map": {
                "items": "nodes.stats.output.long_words",
                "node": {"type": "task", "capability": CAPABILITY, "input": {"text": "${upper(item)}"}},
            },
        },
    ],
    "exit_points": ["stats", "shout"],
}


async def run(url: str, api_key: str, text: str) -> dict[str, Any]:
    """Serve the capability, save the flow and run it; returns the execution's output."""
    worker = portside.Worker(url, api_key, worker_id="example-tokenizer")

    @worker.handler(CAPABILITY, concurrency=4)
    async def tokenize(input: dict[str, Any], ctx: portside.TaskContext) -> dict[str, Any]:
        return {"tokens": re.findall(r"[A-Za-z']+", str(input.get("text", "")))}

    async with worker, portside.AsyncClient(url, api_key) as client:
        await worker.wait_registered(timeout=10)
        await client.flows.upsert(FLOW)
        execution = await client.flows.run("text_stats", {"text": text}, timeout=120)
        print(f"{execution.status} in {execution.duration_ms} ms")
        for node in execution.nodes:
            print(f"  {node.node_id:<12} {node.kind:<10} {node.status:<10} {node.execution_time_ms} ms")
        if execution.status != "completed":
            raise SystemExit(f"failed: {execution.error_message}")
        print(json.dumps(execution.output_data, indent=2))
        return dict(execution.output_data or {})


def _default_key() -> str | None:
    path = Path(os.environ.get("PORTSIDE_DATA_DIR", ".portside")) / "admin_key"
    return os.environ.get("PORTSIDE_API_KEY") or (path.read_text().strip() if path.exists() else None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("PORTSIDE_URL", "http://127.0.0.1:8321"))
    parser.add_argument("--api-key", default=_default_key())
    parser.add_argument("--text", default="Durable orchestration keeps sandboxes and workers honest")
    args = parser.parse_args()
    if not args.api_key:
        raise SystemExit("no API key: set PORTSIDE_API_KEY or run next to the server's .portside directory")
    asyncio.run(run(args.url, args.api_key, args.text))
