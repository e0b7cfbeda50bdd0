"""Idempotency after a crash: pending rows are leased to a live instance, a dead owner's row is taken over,
and the SDK retries ``idempotency_in_progress`` (issue 13). The kill -9 run is test_idempotency_crash.py."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

import portside
from portside._sync._http import HTTP
from portside.server.agents.models import AgentRow
from portside.server.clock import utcnow
from portside.server.context import AppContext
from portside.server.idempotency import LEASE_SECONDS, instance_id
from portside.server.store.core_models import IdempotencyRow
from tests.conftest import ADMIN_KEY
from tests.sdk.flaky import js, scripted_server

AUTH = f"Bearer {ADMIN_KEY}".encode()
IN_PROGRESS = {"error": {"code": "conflict", "message": "running", "details": {"reason": "idempotency_in_progress"}}}


def _ctx(app: FastAPI) -> AppContext:
    ctx: AppContext = app.state.ctx
    return ctx


async def _pending_row(
    app: FastAPI, path: str, key: str, body: bytes, *, owner: str, lease: timedelta | None, effects: list[str] | None
) -> None:
    """The row a server left behind for a request it was running (as the middleware writes it)."""
    scope = hashlib.sha256(AUTH + b"||POST|" + path.encode()).hexdigest()
    async with _ctx(app).db.transaction() as s:
        s.add(
            IdempotencyRow(
                scope=scope,
                key=key,
                request_hash=hashlib.sha256(body).hexdigest(),
                state="pending",
                created_at=utcnow() - timedelta(seconds=1),
                headers={},
                note="",
                owner=owner,
                lease_expires_at=None if lease is None else utcnow() + lease,
                effects=effects,
            )
        )


def _agent_body(name: str) -> bytes:
    return json.dumps({"name": name, "endpoint": "http://127.0.0.1:9/agent"}).encode()


async def _post(api: httpx.AsyncClient, path: str, key: str, body: bytes) -> httpx.Response:
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    return await api.post(path, content=body, headers=headers)


async def test_dead_owners_pending_row_is_taken_over(app: FastAPI, api: httpx.AsyncClient) -> None:
    body = _agent_body("after-crash")
    await _pending_row(app, "/v1/agents", "k-dead", body, owner="ins_dead", lease=timedelta(seconds=-1), effects=None)
    r = await _post(api, "/v1/agents", "k-dead", body)
    assert r.status_code == 201, r.text
    again = await _post(api, "/v1/agents", "k-dead", body)
    assert again.json() == r.json() and again.headers["idempotent-replayed"] == "true"
    names = [a["name"] for a in (await api.get("/v1/agents")).json()["items"]]
    assert names.count("after-crash") == 1


async def test_row_from_before_leases_counts_as_dead(app: FastAPI, api: httpx.AsyncClient) -> None:
    body = _agent_body("legacy")
    await _pending_row(app, "/v1/agents", "k-legacy", body, owner="ins_old", lease=None, effects=None)
    assert (await _post(api, "/v1/agents", "k-legacy", body)).status_code == 201


async def test_live_owner_still_blocks_with_retry_after(app: FastAPI, api: httpx.AsyncClient) -> None:
    body = _agent_body("running")
    await _pending_row(app, "/v1/agents", "k-live", body, owner="ins_alive", lease=timedelta(seconds=6), effects=None)
    r = await _post(api, "/v1/agents", "k-live", body)
    assert r.status_code == 409
    assert r.json()["error"]["details"]["reason"] == "idempotency_in_progress"
    assert 1 <= int(r.headers["retry-after"]) <= LEASE_SECONDS


async def test_takeover_returns_what_the_dead_attempt_committed(app: FastAPI, api: httpx.AsyncClient) -> None:
    """The crashed attempt committed the agent but not its response: the retry gets that agent, no duplicate."""
    made = await api.post("/v1/agents", json={"name": "made-before-crash", "endpoint": "http://127.0.0.1:9/a"})
    agent_id = made.json()["id"]
    body = _agent_body("made-before-crash")
    await _pending_row(
        app, "/v1/agents", "k-made", body, owner="ins_dead", lease=timedelta(seconds=-1), effects=[f"agents:{agent_id}"]
    )
    r = await _post(api, "/v1/agents", "k-made", body)
    assert r.status_code == 201 and r.json()["id"] == agent_id
    names = [a["name"] for a in (await api.get("/v1/agents")).json()["items"]]
    assert names.count("made-before-crash") == 1


async def test_commits_record_their_inserts_on_the_pending_row(app: FastAPI, api: httpx.AsyncClient) -> None:
    """Inside the running request, right after the create committed, the row already names the agent
    (same transaction), and this live instance owns it under a lease in the future."""
    seen: dict[str, Any] = {}
    svc = _ctx(app).services["agents"]

    @app.post("/v1/_test/create-then-look")
    async def _create_then_look(payload: dict[str, Any]) -> dict[str, Any]:
        from portside.server.agents.service import AgentSpec

        agent = await svc.create(AgentSpec(name=payload["name"], endpoint="http://127.0.0.1:9/a"))
        async with _ctx(app).db.session() as s:
            row = (await s.execute(select(IdempotencyRow).where(IdempotencyRow.key == "k-look"))).scalar_one()
        seen.update(effects=row.effects, owner=row.owner, lease=row.lease_expires_at, state=row.state)
        return {"id": agent.id}

    r = await _post(api, "/v1/_test/create-then-look", "k-look", b'{"name": "looked"}')
    assert r.status_code == 200, r.text
    assert seen["effects"] == [f"agents:{r.json()['id']}"]
    assert seen["owner"] == instance_id() and seen["state"] == "pending"
    assert seen["lease"] > utcnow()
    async with _ctx(app).db.session() as s:
        assert await s.get(AgentRow, r.json()["id"]) is not None


async def test_failed_request_that_committed_keeps_its_effects(app: FastAPI, api: httpx.AsyncClient) -> None:
    """A 5xx after a commit releases the key without forgetting what was made: the retry returns it."""
    svc = _ctx(app).services["agents"]
    calls = {"n": 0}

    @app.post("/v1/_test/create-then-fail")
    async def _create_then_fail(payload: dict[str, Any]) -> dict[str, Any]:
        from portside.server.agents.service import AgentSpec

        calls["n"] += 1
        agent = await svc.create(AgentSpec(name="half-done", endpoint="http://127.0.0.1:9/a"))
        if calls["n"] == 1:
            raise RuntimeError("crash after commit")
        return {"id": agent.id}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as c:
        assert (await _post(c, "/v1/_test/create-then-fail", "k-half", b"{}")).status_code == 500
        r = await _post(c, "/v1/_test/create-then-fail", "k-half", b"{}")
        assert r.status_code == 200
    names = [a["name"] for a in (await api.get("/v1/agents")).json()["items"]]
    assert names.count("half-done") == 1


# ------------------------------------------------------------------ SDK


def test_sdk_retries_in_progress_honouring_retry_after() -> None:
    script = [js(409, IN_PROGRESS, **{"Retry-After": "1"}), js(201, {"id": "x"})]
    with scripted_server(script) as (url, server):
        http = HTTP(portside.Client(url, "sk_x", max_retries=2).config)
        started = time.monotonic()
        assert http.json("POST", "/v1/things", json={}, idempotency_key="idem-9") == {"id": "x"}
        assert time.monotonic() - started >= 0.95
    assert [r["headers"]["idempotency-key"] for r in server.requests] == ["idem-9", "idem-9"]


def test_sdk_in_progress_retries_are_bounded() -> None:
    with scripted_server([js(409, IN_PROGRESS, **{"Retry-After": "0"})]) as (url, server):
        http = HTTP(portside.Client(url, "sk_x", max_retries=2).config)
        with pytest.raises(portside.ConflictError) as ei:
            http.json("POST", "/v1/things", json={}, idempotency_key="idem-10")
    assert ei.value.details["reason"] == "idempotency_in_progress"
    assert len(server.requests) == 3


def test_sdk_does_not_retry_other_conflicts_or_keyless_posts() -> None:
    reused = {"error": {"code": "conflict", "message": "x", "details": {"reason": "idempotency_key_reused"}}}
    with scripted_server([js(409, reused), js(201, {})]) as (url, server):
        http = HTTP(portside.Client(url, "sk_x", max_retries=3).config)
        with pytest.raises(portside.ConflictError):
            http.json("POST", "/v1/things", json={}, idempotency_key="idem-11")
    assert len(server.requests) == 1
    with scripted_server([js(409, IN_PROGRESS, **{"Retry-After": "0"}), js(201, {})]) as (url, server):
        http = HTTP(portside.Client(url, "sk_x", max_retries=3).config)
        with pytest.raises(portside.ConflictError):
            http.json("POST", "/v1/things", json={})
    assert len(server.requests) == 1
