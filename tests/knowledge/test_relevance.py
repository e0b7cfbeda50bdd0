"""Paraphrased questions find their passage among 50 distinct topics (real embeddings, every local backend)."""

from __future__ import annotations

from pathlib import Path

import pytest

from portside.server.knowledge import MiniLMEmbedder, NumpyIndex, SqliteVecIndex, VectorIndex
from tests.knowledge.corpus import PASSAGES, QUERIES


@pytest.mark.parametrize("backend", ["numpy-exact", "sqlite-vec"])
async def test_paraphrased_queries_find_their_passage(embedder: MiniLMEmbedder, backend: str, tmp_path: Path) -> None:
    assert len(PASSAGES) == 50 and len(QUERIES) == 10
    index: VectorIndex = (
        NumpyIndex(embedder.dim)
        if backend == "numpy-exact"
        else await SqliteVecIndex.open(tmp_path / "vec.db", embedder.dim, filter_keys=["topic"])
    )
    ids = [f"passage-{i}" for i in range(len(PASSAGES))]
    await index.add(ids, embedder.embed(PASSAGES), [{"topic": i % 5} for i in range(len(PASSAGES))])
    query_vecs = embedder.embed([q for q, _ in QUERIES])
    found = 0
    misses = []
    for (query, want), vec in zip(QUERIES, query_vecs, strict=True):
        top = [hit_id for hit_id, _ in await index.search(vec, top_k=3)]
        if ids[want] in top:
            found += 1
        else:
            misses.append((query, top))
    await index.close()
    assert found >= 9, misses
