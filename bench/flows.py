"""Benchmark the flow engine: per-node overhead and concurrent executions, on SQLite and PostgreSQL.

    .venv/bin/python bench/flows.py [--executions 50] [--concurrency 100] [--nodes 10] [--no-pg] [--json]

A flow of ``--nodes`` no-op nodes in a chain runs through the real app (HTTP API over ASGI, engine,
store). Engine overhead per node is the execution's server-side duration (created -> completed)
divided by its node count: the nodes do no work, so all of it is scheduling plus the durable
writes (start and completion of every node, fenced by the execution's lease). Then
``--concurrency`` executions are started at once and awaited.

Targets on 2 cores: overhead per node p50 <= 5 ms on SQLite; 100 concurrent executions, no errors.
PostgreSQL runs when ``PORTSIDE_TEST_PG`` (default postgresql://postgres@127.0.0.1:5432/test) answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from portside.server.app import create_app
from portside.server.settings import Settings

PG_ADMIN_DSN = os.environ.get("PORTSIDE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
KEY = "sk_bench_admin_0123456789abcdefghijklmnop"


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def pg_database() -> AsyncIterator[str]:
    name = f"portside_bench_{uuid.uuid4().hex[:10]}"
    await _pg(f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        yield f"{base}/{name}"
    finally:
        await _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def portside(database_url: str | None) -> AsyncIterator[httpx.AsyncClient]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp), database_url=database_url, api_key=KEY, sandbox_warm_pool=0, log_level="WARNING"
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {KEY}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", headers=headers, timeout=120
            ) as client:
                yield client


def chain(nodes: int) -> dict[str, Any]:
    spec: list[dict[str, Any]] = [{"id": "n0", "type": "noop"}]
    spec += [{"id": f"n{i}", "type": "noop", "depends_on": [f"n{i - 1}"]} for i in range(1, nodes)]
    return {"flow_id": "bench_chain", "name": "bench", "nodes": spec}


async def run_one(api: httpx.AsyncClient, payload: dict[str, Any]) -> dict[str, Any]:
    r = await api.post("/v1/flows/bench_chain/executions", json={"input": payload})
    r.raise_for_status()
    exec_id = r.json()["execution_id"]
    while True:
        done = await api.get(f"/v1/executions/{exec_id}/wait", params={"timeout": 30})
        done.raise_for_status()
        body: dict[str, Any] = done.json()
        if body["status"] in {"completed", "failed", "cancelled"}:
            return body


async def bench_backend(name: str, database_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    async with portside(database_url) as api:
        (await api.put("/v1/flows/bench_chain", json=chain(args.nodes))).raise_for_status()
        for i in range(5):  # warm-up
            await run_one(api, {"warm": i})
        per_node: list[float] = []
        for i in range(args.executions):
            body = await run_one(api, {"i": i})
            assert body["status"] == "completed", body
            duration_ms = (_ts(body["completed_at"]) - _ts(body["created_at"])) * 1000
            per_node.append(duration_ms / args.nodes)
        started = time.perf_counter()
        results = await asyncio.gather(
            *(run_one(api, {"c": i}) for i in range(args.concurrency)), return_exceptions=True
        )
        wall = time.perf_counter() - started
        errors = [r for r in results if isinstance(r, BaseException) or r.get("status") != "completed"]
        latencies = [(_ts(r["completed_at"]) - _ts(r["created_at"])) * 1000 for r in results if isinstance(r, dict)]
    return {
        "backend": name,
        "nodes_per_flow": args.nodes,
        "overhead_per_node_ms": {
            "p50": round(statistics.median(per_node), 3),
            "p95": round(pct(per_node, 0.95), 3),
            "mean": round(statistics.fmean(per_node), 3),
        },
        "concurrent": {
            "executions": args.concurrency,
            "errors": len(errors),
            "wall_s": round(wall, 3),
            "throughput_exec_per_s": round(args.concurrency / wall, 1),
            "latency_ms_p50": round(pct(latencies, 0.5), 1) if latencies else None,
            "latency_ms_p95": round(pct(latencies, 0.95), 1) if latencies else None,
        },
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=50, help="sequential executions for the overhead figure")
    parser.add_argument("--concurrency", type=int, default=100, help="executions started at once")
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reports = [await bench_backend("sqlite", None, args)]
    if not args.no_pg:
        try:
            async with pg_database() as url:
                reports.append(await bench_backend("postgresql", url, args))
        except (OSError, asyncio.TimeoutError) as exc:
            print(f"postgresql skipped: {exc}")
    if args.json:
        print(json.dumps(reports, indent=2))
        return
    for r in reports:
        o, c = r["overhead_per_node_ms"], r["concurrent"]
        print(
            f"{r['backend']:<11} overhead/node p50 {o['p50']:.2f} ms (p95 {o['p95']:.2f}, target p50 <= 5 ms) | "
            f"{c['executions']} concurrent: {c['errors']} errors, {c['wall_s']:.2f} s, "
            f"{c['throughput_exec_per_s']:.1f} exec/s, "
            f"latency p50 {c['latency_ms_p50']} ms p95 {c['latency_ms_p95']} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
