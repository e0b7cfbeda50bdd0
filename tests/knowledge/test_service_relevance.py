"""Through the HTTP API and the knowledge service: paraphrased questions find their passage among 50.

Runs on SQLite (sqlite-vec index) and PostgreSQL (pgvector if the server has it, else numpy-exact), with
the real MiniLM model.
"""

from __future__ import annotations

import httpx

from tests.knowledge.corpus import PASSAGES, QUERIES


async def test_paraphrased_queries_find_their_passage_through_the_api(api: httpx.AsyncClient) -> None:
    items = [
        {"id": f"passage-{i}", "content": text, "source": f"corpus/{i}.txt", "metadata": {"topic": i % 5}}
        for i, text in enumerate(PASSAGES)
    ]
    r = await api.post("/v1/knowledge/batch", json={"items": items})
    assert r.status_code == 201, r.text
    assert [i["chunk_count"] for i in r.json()["items"]] == [1] * len(PASSAGES)

    found, misses = 0, []
    for query, want in QUERIES:
        r = await api.post("/v1/knowledge/search", json={"query": query, "top_k": 3, "threshold": 0.0})
        assert r.status_code == 200, r.text
        body = r.json()
        top = [hit["item"]["id"] for hit in body["results"]]
        scores = [hit["score"] for hit in body["results"]]
        assert len(top) == 3 and scores == sorted(scores, reverse=True)
        if f"passage-{want}" in top:
            found += 1
        else:
            misses.append((query, top))
    assert found >= 9, misses

    ready = (await api.get("/v1/ready")).json()["checks"]["knowledge_index"]
    assert ready["ok"] and ready["backend"] in ("sqlite-vec", "pgvector", "numpy-exact")
    assert body["index"] == ready["backend"]
