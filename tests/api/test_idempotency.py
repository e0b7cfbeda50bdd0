from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI


@pytest.fixture
def counter(app: FastAPI) -> dict[str, int]:
    """A test-only POST route that counts how often it really runs."""
    calls = {"n": 0, "fail": 0}

    @app.post("/v1/_test/count", status_code=201)
    async def _count(body: dict[str, Any]) -> dict[str, Any]:
        calls["n"] += 1
        if body.get("fail"):
            calls["fail"] += 1
            raise RuntimeError("boom")
        await asyncio.sleep(body.get("sleep", 0))
        return {"n": calls["n"], "echo": body}

    return calls


async def test_same_key_same_body_replays(api: httpx.AsyncClient, counter: dict[str, int]) -> None:
    h = {"Idempotency-Key": "k1"}
    first = await api.post("/v1/_test/count", json={"a": 1}, headers=h)
    second = await api.post("/v1/_test/count", json={"a": 1}, headers=h)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json() == {"n": 1, "echo": {"a": 1}}
    assert second.headers["idempotent-replayed"] == "true"
    assert counter["n"] == 1


async def test_same_key_different_body_is_409(api: httpx.AsyncClient, counter: dict[str, int]) -> None:
    h = {"Idempotency-Key": "k2"}
    await api.post("/v1/_test/count", json={"a": 1}, headers=h)
    r = await api.post("/v1/_test/count", json={"a": 2}, headers=h)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"
    assert r.json()["error"]["details"]["reason"] == "idempotency_key_reused"
    assert counter["n"] == 1


async def test_without_key_runs_every_time(api: httpx.AsyncClient, counter: dict[str, int]) -> None:
    await api.post("/v1/_test/count", json={})
    await api.post("/v1/_test/count", json={})
    assert counter["n"] == 2


async def test_keys_are_scoped_per_caller(api: httpx.AsyncClient, counter: dict[str, int]) -> None:
    other = (await api.post("/v1/keys", json={"name": "o", "scopes": ["write"]})).json()["key"]
    await api.post("/v1/_test/count", json={"x": 1}, headers={"Idempotency-Key": "shared"})
    await api.post(
        "/v1/_test/count", json={"x": 1}, headers={"Idempotency-Key": "shared", "Authorization": f"Bearer {other}"}
    )
    assert counter["n"] == 2


async def test_server_error_is_not_stored(app: FastAPI, counter: dict[str, int]) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        h = {"Idempotency-Key": "k5"}
        assert (await c.post("/v1/_test/count", json={"fail": True}, headers=h)).status_code == 500
        assert (await c.post("/v1/_test/count", json={"fail": True}, headers=h)).status_code == 500
    assert counter["fail"] == 2


async def test_concurrent_duplicates_run_once(api: httpx.AsyncClient, counter: dict[str, int]) -> None:
    h = {"Idempotency-Key": "k6"}
    results = await asyncio.gather(*[api.post("/v1/_test/count", json={"sleep": 0.2}, headers=h) for _ in range(4)])
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) >= 1
    assert set(codes) <= {201, 409}
    assert counter["n"] == 1
    assert (await api.post("/v1/_test/count", json={"sleep": 0.2}, headers=h)).status_code == 201
