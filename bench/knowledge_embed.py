"""Benchmark the knowledge library: embedding throughput and vector search latency.

    .venv/bin/python bench/knowledge_embed.py [--passages 10000] [--queries 200] [--json]

Embeds ``--passages`` synthetic passages (15-30 words each, as RAG chunks of short notes) with the real
MiniLM model, then times single searches (top 10) over all of them in every local backend, with and
without a metadata filter. Targets on 2 cores: >= 200 passages/s, search p50 <= 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from portside.server.knowledge import MiniLMEmbedder, NumpyIndex, SqliteVecIndex, VectorIndex, sqlite_vec_available

SUBJECTS = [
    "The harbour master",
    "A junior engineer",
    "Our billing service",
    "The night shift",
    "A research team",
    "The build server",
    "Each sandbox",
    "The support desk",
    "A delivery drone",
    "The finance office",
]
VERBS = [
    "schedules",
    "audits",
    "restarts",
    "documents",
    "migrates",
    "monitors",
    "archives",
    "rebuilds",
    "reviews",
    "encrypts",
]
OBJECTS = [
    "container manifests",
    "customer invoices",
    "kernel modules",
    "tide tables",
    "access tokens",
    "sourdough recipes",
    "solar panel readings",
    "training datasets",
    "flight plans",
    "legal contracts",
]
TAILS = [
    "before the weekly release",
    "after every power outage",
    "when the queue grows too long",
    "using a checklist kept in the wiki",
    "so that auditors can trace each change",
    "while the primary database is in maintenance",
    "with help from the on-call rotation",
    "to keep latency under a few milliseconds",
    "because regulators asked for it last year",
    "in three regions at once",
]


def passages(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        parts = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(TAILS)]
        extra = f" Ticket {i} notes that {rng.choice(OBJECTS)} {rng.choice(TAILS)}." if i % 2 else ""
        out.append(" ".join(parts) + "." + extra)
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def time_searches(index: VectorIndex, queries: np.ndarray, flt: dict[str, Any] | None) -> dict[str, float]:
    await index.search(queries[0], top_k=10, filter=flt)  # warm up
    times = []
    for q in queries:
        t0 = time.perf_counter()
        await index.search(q, top_k=10, filter=flt)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": statistics.median(times), "p95_ms": pct(times, 95)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--passages", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = ap.parse_args()

    embedder = MiniLMEmbedder(batch_size=args.batch_size)
    t0 = time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - t0
    texts = passages(args.passages)
    t0 = time.perf_counter()
    vecs = embedder.embed(texts)
    embed_s = time.perf_counter() - t0
    queries = embedder.embed(
        [f"who {rng_q} the {o}?" for rng_q, o in zip(VERBS * 100, OBJECTS * 100, strict=False)][: args.queries]
    )
    result: dict[str, Any] = {
        "model": embedder.model_id,
        "model_load_s": round(load_s, 3),
        "passages": args.passages,
        "mean_words": round(sum(len(t.split()) for t in texts) / len(texts), 1),
        "embed_passages_per_s": round(args.passages / embed_s, 1),
        "search": {},
    }
    ids = [f"p{i}" for i in range(args.passages)]
    metas = [{"agent_id": f"agent-{i % 10}"} for i in range(args.passages)]
    with tempfile.TemporaryDirectory() as tmp:
        backends: list[tuple[str, VectorIndex]] = [("numpy-exact", NumpyIndex(embedder.dim))]
        if sqlite_vec_available():
            backends.append(
                ("sqlite-vec", await SqliteVecIndex.open(Path(tmp) / "vec.db", embedder.dim, filter_keys=["agent_id"]))
            )
        for name, index in backends:
            t0 = time.perf_counter()
            await index.add(ids, vecs, metas)
            add_s = time.perf_counter() - t0
            result["search"][name] = {
                "add_s": round(add_s, 3),
                "top10": {k: round(v, 3) for k, v in (await time_searches(index, queries, None)).items()},
                "top10_filtered": {
                    k: round(v, 3) for k, v in (await time_searches(index, queries, {"agent_id": "agent-3"})).items()
                },
            }
            await index.close()
    if args.json:
        print(json.dumps(result))
        return
    print(f"model {result['model']} (loaded in {load_s:.2f} s)")
    print(
        f"embedding: {result['embed_passages_per_s']} passages/s over {args.passages} passages "
        f"of {result['mean_words']} words on average (target >= 200/s)"
    )
    for name, r in result["search"].items():
        print(
            f"{name:12s} add {r['add_s']:.2f} s; top-10 p50 {r['top10']['p50_ms']:.2f} ms "
            f"p95 {r['top10']['p95_ms']:.2f} ms; filtered p50 {r['top10_filtered']['p50_ms']:.2f} ms "
            f"p95 {r['top10_filtered']['p95_ms']:.2f} ms (target p50 <= 20 ms)"
        )


if __name__ == "__main__":
    asyncio.run(main())
