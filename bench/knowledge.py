"""Benchmark the knowledge service end to end: ingest throughput and search latency.

    .venv/bin/python bench/knowledge.py [--passages 10000] [--queries 200] [--batch 64] [--pg] [--json]

Through :class:`KnowledgeService` (validation, chunking, MiniLM embeddings in a worker thread, the
database write, the vector index), on SQLite with its sqlite-vec index (``--pg``: also PostgreSQL, with
pgvector or the in-memory index):

* ingest: ``--passages`` synthetic passages (15-30 words) added in batches of ``--batch`` items;
* search: ``--queries`` searches (top 5, one passage per item) over all of them, each timed from the query
  text to the hydrated passages (query embedding, index, rows).

Targets on 2 cores: ingest >= 200 passages/s, search p50 <= 20 ms. The load average and the process CPU
time are printed too: on a shared machine, ``passages / (cpu_seconds / cores)`` estimates the idle rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.conftest: the PostgreSQL helpers

from knowledge_embed import OBJECTS, VERBS, passages, pct

from portside.server.knowledge.records import KnowledgeSettings, NewItem
from portside.server.knowledge.service import KnowledgeService, shared_embedder
from portside.server.store import Database


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


async def run(url: str, data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    db = Database(url)
    await db.migrate()
    service = KnowledgeService(db, data_dir=data_dir, settings=KnowledgeSettings(warm=False))
    await service.start()
    await service.prepare()
    texts = passages(args.passages)
    items = [
        NewItem(content=t, id=f"p{i}", source=f"notes/{i}.txt", agent_id=f"agent-{i % 10}", metadata={"n": i % 7})
        for i, t in enumerate(texts)
    ]
    load0 = os.getloadavg()[0]
    cpu0, t0 = _cpu(), time.perf_counter()
    for start in range(0, len(items), args.batch):
        await service.add_many("bench", items[start : start + args.batch])
    ingest_s = time.perf_counter() - t0
    ingest_cpu = _cpu() - cpu0

    queries = [f"who {v} the {o}?" for v, o in zip(VERBS * 100, OBJECTS * 100, strict=False)][: args.queries]
    await service.search("bench", queries[0])  # warm up
    times: list[float] = []
    filtered: list[float] = []
    for n, q in enumerate(queries):
        t1 = time.perf_counter()
        hits = await service.search("bench", q, top_k=5, threshold=0.0)
        times.append((time.perf_counter() - t1) * 1000)
        assert len(hits) == 5
        if n % 4 == 0:
            t1 = time.perf_counter()
            await service.search("bench", q, top_k=5, agent_id=f"agent-{n % 10}", threshold=0.0)
            filtered.append((time.perf_counter() - t1) * 1000)
    load1 = os.getloadavg()[0]
    result = {
        "database": "sqlite" if db.is_sqlite else "postgresql",
        "index": service.index_name,
        "passages": args.passages,
        "ingest_s": round(ingest_s, 2),
        "ingest_passages_per_s": round(args.passages / ingest_s, 1),
        "ingest_cpu_s": round(ingest_cpu, 2),
        "ingest_passages_per_s_idle_estimate": round(args.passages / (ingest_cpu / (os.cpu_count() or 1)), 1),
        "search_p50_ms": round(statistics.median(times), 2),
        "search_p95_ms": round(pct(times, 95), 2),
        "search_agent_scoped_p50_ms": round(statistics.median(filtered), 2),
        "load_average": [round(load0, 2), round(load1, 2)],
    }
    await service.stop()
    await db.dispose()
    return result


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=64, help="items per add_many call")
    ap.add_argument("--pg", action="store_true", help="also run on PostgreSQL ($PORTSIDE_TEST_PG server)")
    ap.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    args = ap.parse_args()

    t0 = time.perf_counter()
    shared_embedder().load()
    load_s = time.perf_counter() - t0
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(await run(f"sqlite+aiosqlite:///{tmp}/portside.db", Path(tmp), args))
    if args.pg:
        from tests.conftest import create_pg_database, drop_pg_database

        url = await asyncio.to_thread(create_pg_database)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                results.append(await run(url, Path(tmp), args))
        finally:
            await asyncio.to_thread(drop_pg_database, url)
    if args.json:
        for r in results:
            print(json.dumps({"model_load_s": round(load_s, 3), **r}))
        return
    print(f"model loaded in {load_s:.2f} s; {os.cpu_count()} CPUs")
    for r in results:
        print(
            f"{r['database']:10s} index {r['index']}: ingest {r['ingest_passages_per_s']} passages/s "
            f"({r['passages']} in {r['ingest_s']} s, {r['ingest_cpu_s']} CPU-s -> ~"
            f"{r['ingest_passages_per_s_idle_estimate']}/s on idle cores; target >= 200/s)"
        )
        print(
            f"{'':10s} search over {r['passages']}: p50 {r['search_p50_ms']} ms, p95 {r['search_p95_ms']} ms, "
            f"agent-scoped p50 {r['search_agent_scoped_p50_ms']} ms (target p50 <= 20 ms); "
            f"load average {r['load_average'][0]} -> {r['load_average'][1]}"
        )


if __name__ == "__main__":
    asyncio.run(main())
