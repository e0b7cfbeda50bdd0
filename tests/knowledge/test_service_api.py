"""The knowledge service through /v1/knowledge on SQLite and PostgreSQL: items, scopes, filters, RAG context,
errors, and the vector index kept in step with the store (restarts, several replicas)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from portside import AsyncClient
from portside.server.app import create_app
from portside.server.knowledge.service import KnowledgeService
from tests.conftest import ADMIN_KEY, create_pg_database, drop_pg_database, make_settings

GUIDE = """# Portside guide

Portside is a self-hosted runtime for AI agents.

## Installation

Install the package with pip, then run `portside serve` to start the server on port 8321.

## Authentication

Every request carries an API key in the Authorization header as a bearer token. The admin key is
generated at first start and saved in the data directory.

## Sandboxes

""" + " ".join(f"Sandbox sessions run untrusted Python code in isolation with bubblewrap, step {i}." for i in range(40))


def client_for(app: FastAPI, key: str = ADMIN_KEY) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://portside.test",
        headers={"Authorization": f"Bearer {key}"},
    )


async def search(api: httpx.AsyncClient, query: str, **body: object) -> list[dict[str, object]]:
    r = await api.post("/v1/knowledge/search", json={"query": query, **body})
    assert r.status_code == 200, r.text
    results: list[dict[str, object]] = r.json()["results"]
    return results


async def test_items_lifecycle(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/v1/knowledge",
        json={"id": "docs/guide.md", "content": GUIDE, "source": "guide.md", "metadata": {"lang": "en"}},
    )
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["id"] == "docs/guide.md" and added["replaced"] is False and added["chunk_count"] >= 3
    assert "content" not in added

    got = (await api.get("/v1/knowledge/docs/guide.md")).json()
    assert got["content"] == GUIDE and got["metadata"] == {"lang": "en"} and got["source"] == "guide.md"

    hits = await search(api, "How do I authenticate my requests?")
    assert hits and hits[0]["item"]["id"] == "docs/guide.md"  # type: ignore[index]
    chunk = hits[0]["chunk"]
    assert "bearer token" in chunk["text"] and chunk["heading"] == "Portside guide"  # type: ignore[index]
    assert GUIDE[chunk["start"] : chunk["end"]] == chunk["text"]  # type: ignore[index]
    assert hits[0]["source"] == "guide.md#Portside guide"
    assert len(hits) == 1  # one result per item by default
    many = await search(api, "bubblewrap sandbox isolation", per_item=False, top_k=10, threshold=0.0)
    assert len(many) == added["chunk_count"] and len({h["chunk"]["index"] for h in many}) == len(many)  # type: ignore[index]

    # Replacing an item swaps its chunks and vectors.
    r = await api.post("/v1/knowledge", json={"id": "docs/guide.md", "content": "Bananas are rich in potassium."})
    assert r.status_code == 201 and r.json()["replaced"] is True and r.json()["chunk_count"] == 1
    assert not await search(api, "How do I authenticate my requests?", threshold=0.3)
    assert (await search(api, "Which fruit contains potassium?"))[0]["item"]["id"] == "docs/guide.md"  # type: ignore[index]

    r = await api.post(
        "/v1/knowledge/batch",
        json={"items": [{"content": f"Note number {i} about tides and the moon."} for i in range(3)]},
    )
    assert r.status_code == 201 and len(r.json()["items"]) == 3
    listed = (await api.get("/v1/knowledge", params={"limit": 2})).json()
    assert len(listed["items"]) == 2 and listed["next_cursor"]
    rest = (await api.get("/v1/knowledge", params={"limit": 2, "cursor": listed["next_cursor"]})).json()
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None

    assert (await api.delete("/v1/knowledge/docs/guide.md")).json() == {"id": "docs/guide.md", "deleted": True}
    assert (await api.get("/v1/knowledge/docs/guide.md")).status_code == 404
    assert (await api.delete("/v1/knowledge/docs/guide.md")).json()["error"]["code"] == "knowledge_item_not_found"
    assert not await search(api, "Which fruit contains potassium?", threshold=0.3)
    ready = (await api.get("/v1/ready")).json()
    assert ready["status"] == "ready" and ready["checks"]["knowledge_index"]["model_loaded"] is True


async def test_scopes_filters_and_context(api: httpx.AsyncClient, app: FastAPI) -> None:
    items = [
        {"id": "a1", "agent_id": "agent-a", "content": "Agent A deploys services to Kubernetes clusters on Fridays."},
        {"id": "b1", "agent_id": "agent-b", "content": "Agent B deploys services to Kubernetes clusters on Mondays."},
        {"id": "s1", "content": "Kubernetes deployments roll out new pods gradually.", "source_type": "code"},
        {
            "id": "c1",
            "content": "Yesterday we talked about deploying to Kubernetes.",
            "source_type": "conversation",
            "metadata": {"team": "ops", "priority": 2},
        },
    ]
    assert (await api.post("/v1/knowledge/batch", json={"items": items})).status_code == 201
    q = "How are services deployed to Kubernetes?"

    def ids(hits: list[dict[str, object]]) -> set[str]:
        return {h["item"]["id"] for h in hits}  # type: ignore[index]

    assert ids(await search(api, q, top_k=10, threshold=0.0)) == {"a1", "b1", "s1", "c1"}
    assert ids(await search(api, q, agent_id="agent-a", threshold=0.0)) == {"a1"}
    assert ids(await search(api, q, agent_id="agent-a", include_shared=True, threshold=0.0)) == {"a1", "s1", "c1"}
    assert ids(await search(api, q, source_types=["code", "conversation"], threshold=0.0)) == {"s1", "c1"}
    assert ids(await search(api, q, filter={"team": "ops"}, threshold=0.0)) == {"c1"}
    assert ids(await search(api, q, filter={"team": "ops", "priority": 3}, threshold=0.0)) == set()
    assert ids(await search(api, q, top_k=2, threshold=0.0)) <= {"a1", "b1", "s1", "c1"}
    assert len(await search(api, q, top_k=2, threshold=0.0)) == 2
    assert await search(api, q, threshold=0.99) == []

    # Another owner sees none of it, and cannot delete it.
    r = await api.post("/v1/keys", json={"name": "bob", "scopes": ["read", "write"], "owner": "bob"})
    async with client_for(app, r.json()["key"]) as bob:
        assert await search(bob, q, threshold=0.0) == []
        assert (await bob.get("/v1/knowledge/a1")).status_code == 404
        assert (await bob.delete("/v1/knowledge/a1")).status_code == 404
        assert (await bob.post("/v1/knowledge", json={"id": "a1", "content": "Bob's own a1."})).status_code == 201
    assert (await api.get("/v1/knowledge/a1")).json()["agent_id"] == "agent-a"

    # RAG context: best passages first, within the token budget, with sources.
    r = await api.post("/v1/knowledge/context", json={"query": q, "max_items": 3, "threshold": 0.0})
    ctx = r.json()
    assert r.status_code == 200 and len(ctx["passages"]) == 3 and len(ctx["sources"]) == 3
    assert ctx["total_tokens"] == sum(p["tokens"] for p in ctx["passages"]) <= ctx["max_tokens"] == 1024
    assert ctx["context"].startswith("[1] ") and not ctx["truncated"]
    scores = [p["score"] for p in ctx["passages"]]
    assert scores == sorted(scores, reverse=True)
    tight = (await api.post("/v1/knowledge/context", json={"query": q, "max_tokens": 20, "threshold": 0.0})).json()
    assert tight["total_tokens"] <= 20 and len(tight["passages"]) == 1
    cut = (await api.post("/v1/knowledge/context", json={"query": q, "max_tokens": 4, "threshold": 0.0})).json()
    assert cut["truncated"] and cut["total_tokens"] <= 4 and len(cut["passages"][0]["chunk"]["text"]) < 40


BAD_INPUT = [
    ("/v1/knowledge", {"content": "   "}, "invalid_content"),
    ("/v1/knowledge", {"content": "x", "source_type": "Not A Type"}, "invalid_source_type"),
    ("/v1/knowledge", {"content": "x", "id": " padded "}, "invalid_item_id"),
    ("/v1/knowledge", {"content": "x", "chunking": "sideways"}, "invalid_chunking"),
    ("/v1/knowledge", {"content": "x y z", "chunk_size": 10, "chunk_overlap": 10}, "invalid_chunking"),
    ("/v1/knowledge/batch", {"items": [{"id": "d", "content": "x"}, {"id": "d", "content": "y"}]}, "duplicate_item_id"),
    ("/v1/knowledge/search", {"query": ""}, "invalid_query"),
    ("/v1/knowledge/search", {"query": "q", "top_k": 0}, "invalid_top_k"),
    ("/v1/knowledge/search", {"query": "q", "filter": {"k": {"nested": 1}}}, "invalid_filter"),
    ("/v1/knowledge/context", {"query": "q", "max_tokens": 0}, "invalid_max_tokens"),
]


async def test_bad_input_is_400(tmp_path: Path) -> None:
    application = create_app(make_settings(tmp_path / "data"))
    async with application.router.lifespan_context(application), client_for(application) as api:
        for path, body, code in BAD_INPUT:
            r = await api.post(path, json=body)
            assert r.status_code == 400 and r.json()["error"]["code"] == code, (body, r.text)
        assert (await api.get("/v1/knowledge")).json()["items"] == []


async def test_sqlite_vec_index_survives_restarts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    marker = tmp_path / "data" / "knowledge-vec.json"

    async def run(steps: str) -> list[str]:
        application = create_app(settings)
        async with application.router.lifespan_context(application), client_for(application) as api:
            if "add" in steps:
                await api.post("/v1/knowledge", json={"id": "tea", "content": "Green tea is steeped at 80 degrees."})
                await api.post("/v1/knowledge", json={"id": "ski", "content": "Skis are waxed for glide on snow."})
            if "delete" in steps:
                await api.delete("/v1/knowledge/ski")
            service = application.state.ctx.service("knowledge", KnowledgeService)
            assert service.index_name == "sqlite-vec"
            found = await search(api, "At what temperature should green tea be brewed?", top_k=5, threshold=-1.0)
            return [h["item"]["id"] for h in found]  # type: ignore[index]

    assert await run("add") == ["tea", "ski"]
    assert marker.is_file()
    assert await run("") == ["tea", "ski"]  # caught up from the marker
    assert await run("delete") == ["tea"]
    marker.unlink()  # a lost marker means a full rebuild from the stored vectors
    assert await run("") == ["tea"]
    (tmp_path / "data" / "knowledge-vec.db").unlink()
    marker.write_text('{"epoch": "someone-else", "version": 1}')
    assert await run("") == ["tea"]


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.mark.postgres
async def test_replicas_on_postgres_see_each_others_writes(tmp_path: Path, pg_url: str) -> None:
    one = create_app(make_settings(tmp_path / "one", pg_url))
    two = create_app(make_settings(tmp_path / "two", pg_url))
    async with one.router.lifespan_context(one), two.router.lifespan_context(two):
        async with client_for(one) as a, client_for(two) as b:
            q = "Which bird cannot fly but swims well?"
            assert await search(b, q, threshold=0.0) == []
            r = await a.post("/v1/knowledge", json={"id": "penguin", "content": "Penguins swim but cannot fly."})
            assert r.status_code == 201
            assert [h["item"]["id"] for h in await search(b, q)] == ["penguin"]  # type: ignore[index]
            await b.post("/v1/knowledge", json={"id": "ostrich", "content": "Ostriches run fast but cannot fly."})
            assert {h["item"]["id"] for h in await search(a, q, top_k=5)} == {"penguin", "ostrich"}  # type: ignore[index]
            assert (await b.delete("/v1/knowledge/penguin")).status_code == 200
            assert [h["item"]["id"] for h in await search(a, q, top_k=5)] == ["ostrich"]  # type: ignore[index]
            ready = (await a.get("/v1/ready")).json()["checks"]["knowledge_index"]
            assert ready["backend"] in ("numpy-exact", "pgvector")


async def test_python_sdk(api: httpx.AsyncClient, app: FastAPI) -> None:
    async with AsyncClient(
        base_url="http://portside.test", api_key=ADMIN_KEY, transport=httpx.ASGITransport(app=app)
    ) as c:
        item = await c.knowledge.add(
            "The Eiffel Tower in Paris is 330 metres tall.", id="eiffel", source="facts.txt", metadata={"kind": "fact"}
        )
        assert item.id == "eiffel" and item.chunk_count == 1 and item.replaced is False
        more = await c.knowledge.add_many([{"content": "Mount Everest is 8849 metres high.", "agent_id": "geo"}])
        assert more[0].agent_id == "geo"
        result = await c.knowledge.search("How tall is the famous Paris tower?", filter={"kind": "fact"})
        assert [h.item.id for h in result.results] == ["eiffel"] and result.results[0].score > 0.5
        ctx = await c.knowledge.context("How high is the tallest mountain?", agent_id="geo")
        assert ctx.sources == [more[0].id] and "Everest" in ctx.context
        assert (await c.knowledge.get("eiffel")).content == "The Eiffel Tower in Paris is 330 metres tall."
        assert {i.id for i in (await c.knowledge.list()).items} == {"eiffel", more[0].id}
        await c.knowledge.delete("eiffel")
        assert [i.id for i in (await c.knowledge.list()).items] == [more[0].id]
