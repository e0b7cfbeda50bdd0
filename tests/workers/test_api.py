"""Native task API and the gateway's answers to bad input (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from portside.server.workers.domain import LeaseFrame
from portside.server.workers.sessions import Session
from portside.server.workers.tokens import WorkerCaller
from tests.conftest import ADMIN_KEY
from tests.workers.helpers import next_lease, service

CAP = "acme/tests/echo"


async def _key(api: httpx.AsyncClient, name: str, scopes: list[str], owner: str | None = None) -> str:
    r = await api.post("/v1/keys", json={"name": name, "scopes": scopes, "owner": owner or name})
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


async def _lease(app: FastAPI, api: httpx.AsyncClient, worker_id: str = "n-1") -> tuple[Session, LeaseFrame]:
    """A neuron session opened in process, registered, holding a lease on a fresh task."""
    svc = service(app)
    caller = WorkerCaller(principal=await app.state.ctx.keys.authenticate(ADMIN_KEY))
    session = await svc.broker.open_stream(caller, worker_id, "neuron")
    await svc.broker.register(
        caller,
        worker_id,
        kind="neuron",
        protocol_version="1.0.0",
        capabilities=[{"type": CAP, "scope": "any", "concurrency": 4}],
    )
    r = await api.post("/v1/tasks", json={"capability": CAP, "input": {"n": 1}})
    assert r.status_code == 201
    svc.broker.wake()
    return session, await next_lease(session)


async def _state(api: httpx.AsyncClient, task_id: str) -> tuple[str, list[tuple[str, str]]]:
    task = (await api.get(f"/v1/tasks/{task_id}")).json()
    leases = (await api.get(f"/v1/tasks/{task_id}/leases")).json()["items"]
    return task["status"], [(x["id"], x["state"]) for x in leases]


async def test_submit_get_list_cancel(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/tasks", json={"capability": CAP, "input": {"a": 1}, "metadata": {"k": "v"}})
    assert r.status_code == 201
    task = r.json()
    assert task["status"] == "queued" and task["attempt"] == 0 and task["input"] == {"a": 1}
    assert task["id"].startswith("tsk_") and task["created_at"].endswith("Z")

    got = (await api.get(f"/v1/tasks/{task['id']}")).json()
    assert got["metadata"] == {"k": "v"}

    listed = (await api.get("/v1/tasks", params={"capability": CAP, "status": "queued"})).json()
    assert [t["id"] for t in listed["items"]] == [task["id"]]
    counts = (await api.get("/v1/tasks/counts")).json()
    assert counts["queued"] == 1 and counts["succeeded"] == 0

    waited = (await api.get(f"/v1/tasks/{task['id']}/wait", params={"timeout": 0.05})).json()
    assert waited["status"] == "queued"

    cancelled = (await api.post(f"/v1/tasks/{task['id']}/cancel", json={"reason": "changed my mind"})).json()
    assert cancelled["status"] == "cancelled" and cancelled["error"]["message"] == "changed my mind"
    again = await api.post(f"/v1/tasks/{task['id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"

    # -- batch and pagination
    paged = "acme/tests/paged"
    r = await api.post("/v1/tasks/batch", json={"tasks": [{"capability": paged, "input": i} for i in range(5)]})
    assert r.status_code == 201 and r.json()["total"] == 5
    page1 = (await api.get("/v1/tasks", params={"limit": 3, "capability": paged})).json()
    assert len(page1["items"]) == 3 and page1["next_cursor"]
    page2 = (
        await api.get("/v1/tasks", params={"limit": 3, "cursor": page1["next_cursor"], "capability": paged})
    ).json()
    assert len(page2["items"]) == 2 and page2["next_cursor"] is None
    ids = [t["id"] for t in page1["items"] + page2["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5

    # -- idempotency key
    body = {"capability": CAP, "input": {"x": 1}, "idempotency_key": "order-42"}
    first = (await api.post("/v1/tasks", json=body)).json()
    second = (await api.post("/v1/tasks", json=body)).json()
    assert first["id"] == second["id"]
    r = await api.post("/v1/tasks", json={**body, "input": {"x": 2}})
    assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_key_reused"
    counts = (await api.get("/v1/tasks/counts", params={"capability": CAP})).json()
    assert counts["queued"] == 1 and counts["cancelled"] == 1

    # -- other bad submissions
    cases: list[dict[str, Any]] = [
        {"capability": CAP, "timeout_s": 0},
        {"capability": CAP, "timeout_s": -1},
        {"capability": CAP, "max_attempts": 0},
        {"capability": CAP, "unknown_field": 1},
        {"capability": CAP, "on_behalf_of": ""},
        {"input": {}},
    ]
    for body in cases:
        r = await api.post("/v1/tasks", json=body)
        assert r.status_code == 400, (body, r.text)
    assert (await api.get("/v1/tasks/missing")).status_code == 404
    assert (await api.post("/v1/tasks/missing/cancel")).status_code == 404
    assert (await api.get("/v1/tasks", params={"status": "bogus"})).status_code == 400

    # -- capability types that are valid
    for ctype in ["owner/package", "owner/package/name", "owner/package/name.variant", "a-b_c.d/e"]:
        r = await api.post("/v1/tasks", json={"capability": ctype, "input": None})
        assert r.status_code == 201, (ctype, r.text)


MALFORMED: list[Any] = ["nonamespace", "a/", "/b", "a//b", "a/b c", "a/b/ü", "", "x" * 199 + "/y", 42, None]


async def test_malformed_capability_types_are_400(api: httpx.AsyncClient) -> None:
    for bad in MALFORMED:
        r = await api.post("/v1/tasks", json={"capability": bad, "input": {}})
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["code"] in {"invalid_capability_type", "validation_error"}
        cap = {"type": bad, "scope": "any", "concurrency": 1}
        r = await api.post(
            "/neuron/register", json={"neuronId": "n-bad", "protocolVersion": "1.0.0", "capabilities": [cap]}
        )
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "invalid_capability_type"
        if isinstance(bad, str) and bad:
            r = await api.put(f"/v1/capabilities/{bad}", json={})
            assert r.status_code in (400, 404, 405), bad
    assert (await api.get("/v1/tasks/counts")).json()["queued"] == 0
    assert (await api.get("/v1/workers")).json()["total"] == 0


async def test_schema_invalid_input_is_rejected_without_a_task(api: httpx.AsyncClient) -> None:
    schema = {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}}
    r = await api.put(f"/v1/capabilities/{CAP}", json={"input_schema": schema, "output_schema": {"type": "object"}})
    assert r.status_code == 200, r.text
    r = await api.post("/v1/tasks", json={"capability": CAP, "input": {"url": 5}})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "input_schema_mismatch" and err["details"]["errors"][0]["path"] == "/url"
    r = await api.post(
        "/v1/tasks/batch", json={"tasks": [{"capability": CAP, "input": {"url": "u"}}, {"capability": CAP}]}
    )
    assert r.status_code == 400 and r.json()["error"]["details"]["index"] == 1
    assert (await api.get("/v1/tasks/counts")).json()["queued"] == 0
    ok = await api.post("/v1/tasks", json={"capability": CAP, "input": {"url": "https://x"}})
    assert ok.status_code == 201
    bad_schema = await api.put(f"/v1/capabilities/{CAP}", json={"input_schema": {"type": "nope"}})
    assert bad_schema.status_code == 400 and bad_schema.json()["error"]["code"] == "invalid_schema"
    listed = (await api.get("/v1/capabilities")).json()["items"]
    assert [c["type"] for c in listed] == [CAP]


async def test_on_behalf_of_needs_admin_or_self(api: httpx.AsyncClient) -> None:
    alice = await _key(api, "alice", ["read", "write"])
    async with httpx.AsyncClient(
        transport=api._transport, base_url=str(api.base_url), headers={"Authorization": f"Bearer {alice}"}
    ) as client:
        r = await client.post("/v1/tasks", json={"capability": CAP, "on_behalf_of": "bob"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "on_behalf_of_not_allowed"
        r = await client.post("/v1/tasks", json={"capability": CAP, "on_behalf_of": "alice"})
        assert r.status_code == 201
        mine = r.json()["id"]
        assert (await client.get("/v1/tasks")).json()["items"][0]["id"] == mine
    admin_task = (await api.post("/v1/tasks", json={"capability": CAP, "on_behalf_of": "bob"})).json()
    async with httpx.AsyncClient(
        transport=api._transport, base_url=str(api.base_url), headers={"Authorization": f"Bearer {alice}"}
    ) as client:
        assert (await client.get(f"/v1/tasks/{admin_task['id']}")).status_code == 404


async def test_register_errors(api: httpx.AsyncClient) -> None:
    cap = {"type": CAP, "scope": "any", "concurrency": 1}
    r = await api.post("/neuron/register", json={"neuronId": "n1", "protocolVersion": "2.0.0", "capabilities": [cap]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "protocol_version_unsupported"
    r = await api.post("/neuron/register", json={"neuronId": "n1", "protocolVersion": "1.0.0", "capabilities": []})
    assert r.status_code == 400
    r = await api.post(
        "/neuron/register", json={"neuronId": "n1", "protocolVersion": "1.0.0", "capabilities": [cap, cap]}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "duplicate_capability"
    for bad in [{**cap, "concurrency": 0}, {**cap, "scope": "some"}, {**cap, "leaseTtlMs": 10}]:
        r = await api.post(
            "/neuron/register", json={"neuronId": "n1", "protocolVersion": "1.0.0", "capabilities": [bad]}
        )
        assert r.status_code == 400, bad
    r = await api.post("/neuron/register", json={"neuronId": "bad id/x", "protocolVersion": "1", "capabilities": [cap]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_worker_id"
    r = await api.post("/neuron/register", json={"neuronId": "n1", "protocolVersion": "1.4.2", "capabilities": [cap]})
    assert r.status_code == 200 and r.json()["protocolVersion"] == "1.0.0"
    assert r.json()["capabilities"] == [cap]

    bob = await _key(api, "bob", ["worker"])
    async with httpx.AsyncClient(
        transport=api._transport, base_url=str(api.base_url), headers={"Authorization": f"Bearer {bob}"}
    ) as client:
        r = await client.post(
            "/neuron/register", json={"neuronId": "n1", "protocolVersion": "1.0.0", "capabilities": [cap]}
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "worker_id_taken"
        scoped = {**cap, "scope": {"onBehalfOf": "carol"}}
        r = await client.post(
            "/neuron/register", json={"neuronId": "b1", "protocolVersion": "1.0.0", "capabilities": [scoped]}
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "scope_not_allowed"
        mine = {**cap, "scope": {"onBehalfOf": "bob"}}
        r = await client.post(
            "/neuron/register", json={"neuronId": "b1", "protocolVersion": "1.0.0", "capabilities": [mine]}
        )
        assert r.status_code == 200
        r = await client.post("/neuron/heartbeat", json={"neuronId": "ghost", "inFlight": [], "sentAt": "x"})
        assert r.status_code == 404
    reader = await _key(api, "reader", ["read"])
    async with httpx.AsyncClient(
        transport=api._transport, base_url=str(api.base_url), headers={"Authorization": f"Bearer {reader}"}
    ) as client:
        r = await client.post(
            "/neuron/register", json={"neuronId": "r1", "protocolVersion": "1.0.0", "capabilities": [cap]}
        )
        assert r.status_code == 403
    async with httpx.AsyncClient(transport=api._transport, base_url=str(api.base_url)) as anon:
        assert (await anon.post("/neuron/ack", json={"leaseId": "x"})).status_code == 401
        assert (await anon.get("/neuron/events", params={"neuronId": "x"})).status_code == 401

    # -- token endpoint
    r = await api.post("/api/v1/auth/token", json={"neuronId": "n-7", "ttlSeconds": 60})
    assert r.status_code == 200
    body = r.json()
    assert body["tokenType"] == "Bearer" and body["expiresIn"] == 60 and body["neuronId"] == "n-7"
    token = body["token"]
    async with httpx.AsyncClient(
        transport=api._transport, base_url=str(api.base_url), headers={"Authorization": f"Bearer {token}"}
    ) as neuron:
        cap = {"type": CAP, "scope": "any", "concurrency": 1}
        r = await neuron.post(
            "/neuron/register", json={"neuronId": "n-7", "protocolVersion": "1.0.0", "capabilities": [cap]}
        )
        assert r.status_code == 200
        r = await neuron.post(
            "/neuron/register", json={"neuronId": "n-8", "protocolVersion": "1.0.0", "capabilities": [cap]}
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "worker_mismatch"
        refreshed = await neuron.post("/api/v1/auth/token")
        assert refreshed.status_code == 200 and refreshed.json()["neuronId"] == "n-7"
        # a token is not an API key for the native API
        assert (await neuron.get("/v1/tasks")).status_code == 401
    for bad in ["garbage", token[:-4] + "AAAA", "a.b.c"]:
        async with httpx.AsyncClient(
            transport=api._transport, base_url=str(api.base_url), headers={"Authorization": f"Bearer {bad}"}
        ) as client:
            assert (await client.post("/neuron/heartbeat", json={"neuronId": "n-7", "inFlight": []})).status_code == 401
    reader = await _key(api, "reader2", ["read"])
    async with httpx.AsyncClient(
        transport=api._transport, base_url=str(api.base_url), headers={"Authorization": f"Bearer {reader}"}
    ) as client:
        assert (await client.post("/api/v1/auth/token")).status_code == 403
    async with httpx.AsyncClient(transport=api._transport, base_url=str(api.base_url)) as anon:
        assert (await anon.post("/api/v1/auth/token")).status_code == 401
        r = await anon.post("/api/v1/auth/token", json={"apiKey": ADMIN_KEY})
        assert r.status_code == 200
        assert (await anon.post("/api/v1/auth/token", content=b"{not json")).status_code == 400

    # -- revoked key invalidates its tokens
    r = await api.post("/v1/keys", json={"name": "tmp", "scopes": ["worker"], "owner": "tmp"})
    key, key_id = r.json()["key"], r.json()["id"]
    async with httpx.AsyncClient(transport=api._transport, base_url=str(api.base_url)) as anon:
        token = (await anon.post("/api/v1/auth/token", json={"apiKey": key})).json()["token"]
    await api.delete(f"/v1/keys/{key_id}")
    async with httpx.AsyncClient(
        transport=api._transport, base_url=str(api.base_url), headers={"Authorization": f"Bearer {token}"}
    ) as neuron:
        r = await neuron.post("/neuron/heartbeat", json={"neuronId": "n", "inFlight": []})
        assert r.status_code == 401


async def test_unknown_leases_and_non_holders(app: FastAPI, api: httpx.AsyncClient) -> None:
    session, lease = await _lease(app, api)
    before = await _state(api, lease.task_id)
    assert before[0] == "running" and before[1] == [(lease.lease_id, "active")]

    for path, body in [
        ("/neuron/ack", {"leaseId": "lse_unknown", "output": {}}),
        ("/neuron/nack", {"leaseId": "lse_unknown", "kind": "terminal", "reason": "x"}),
        ("/neuron/progress", {"leaseId": "lse_unknown", "percent": 5}),
    ]:
        r = await api.post(path, json=body)
        assert r.status_code == 404 and r.json()["error"]["code"] == "lease_not_found", path
    r = await api.post("/neuron/nack", json={"leaseId": lease.lease_id, "kind": "maybe", "reason": "x"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_nack_kind"
    r = await api.post("/neuron/progress", json={"leaseId": lease.lease_id, "percent": 150})
    assert r.status_code == 400

    other = await _key(api, "intruder", ["worker"])
    async with httpx.AsyncClient(
        transport=api._transport, base_url=str(api.base_url), headers={"Authorization": f"Bearer {other}"}
    ) as intruder:
        for path, body in [
            ("/neuron/ack", {"leaseId": lease.lease_id, "output": {"stolen": True}}),
            ("/neuron/nack", {"leaseId": lease.lease_id, "kind": "terminal", "reason": "x"}),
            ("/neuron/progress", {"leaseId": lease.lease_id, "percent": 5}),
        ]:
            r = await intruder.post(path, json=body)
            assert r.status_code == 409 and r.json()["error"]["code"] == "lease_not_held", path
    # an admin-minted token bound to another neuron id does not hold it either
    token = (await api.post("/api/v1/auth/token", json={"neuronId": "n-2"})).json()["token"]
    async with httpx.AsyncClient(
        transport=api._transport, base_url=str(api.base_url), headers={"Authorization": f"Bearer {token}"}
    ) as other_neuron:
        r = await other_neuron.post("/neuron/ack", json={"leaseId": lease.lease_id, "output": {}})
        assert r.status_code == 409 and r.json()["error"]["code"] == "lease_not_held"
        r = await other_neuron.post(
            "/v1/workers/n-1/results", json={"results": [{"leaseId": lease.lease_id, "type": "ack"}]}
        )
        assert r.status_code == 403
    r = await api.post(
        "/v1/workers/n-9/results", json={"results": [{"leaseId": lease.lease_id, "type": "ack", "output": 1}]}
    )
    assert r.status_code == 200 and r.json()["results"][0]["error"]["code"] == "lease_not_held"
    assert await _state(api, lease.task_id) == before
    assert (await api.get(f"/v1/tasks/{lease.task_id}/progress")).json()["items"] == []

    # the holder acks; a second ack is a harmless duplicate, a nack after it is refused
    r = await api.post("/neuron/ack", json={"leaseId": lease.lease_id, "output": {"ok": 1}})
    assert r.status_code == 200 and r.json()["status"] == "succeeded"
    r = await api.post("/neuron/ack", json={"leaseId": lease.lease_id, "output": {"ok": 2}})
    assert r.status_code == 200
    r = await api.post("/neuron/nack", json={"leaseId": lease.lease_id, "kind": "retryable", "reason": "late"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "lease_ended"
    task = (await api.get(f"/v1/tasks/{lease.task_id}")).json()
    assert task["status"] == "succeeded" and task["output"] == {"ok": 1}
    await service(app).broker.close_stream(session)


async def test_output_schema_checked_on_ack(app: FastAPI, api: httpx.AsyncClient) -> None:
    await api.put(f"/v1/capabilities/{CAP}", json={"output_schema": {"type": "object", "required": ["ok"]}})
    service(app).capabilities.invalidate()
    session, lease = await _lease(app, api)
    r = await api.post("/neuron/ack", json={"leaseId": lease.lease_id, "output": {"nope": 1}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "output_schema_mismatch"
    task = (await api.get(f"/v1/tasks/{lease.task_id}")).json()
    assert task["status"] == "failed" and task["error"]["code"] == "output_schema_mismatch"
    assert task["output"] is None
    await service(app).broker.close_stream(session)


async def test_progress_and_nack_kinds(app: FastAPI, api: httpx.AsyncClient) -> None:
    session, lease = await _lease(app, api)
    r = await api.post("/neuron/progress", json={"leaseId": lease.lease_id, "percent": 40, "message": "m", "data": [1]})
    assert r.status_code == 200
    task = (await api.get(f"/v1/tasks/{lease.task_id}")).json()
    assert task["progress"]["percent"] == 40 and task["progress"]["message"] == "m"
    items = (await api.get(f"/v1/tasks/{lease.task_id}/progress")).json()["items"]
    assert [(p["percent"], p["data"]) for p in items] == [(40, [1])]

    r = await api.post("/neuron/nack", json={"leaseId": lease.lease_id, "kind": "schema-mismatch", "reason": "bad"})
    assert r.status_code == 200 and r.json()["status"] == "failed"
    task = (await api.get(f"/v1/tasks/{lease.task_id}")).json()
    assert task["error"]["kind"] == "schema-mismatch" and task["error"]["code"] == "schema_mismatch"
    await service(app).broker.close_stream(session)


async def test_workers_listing_shows_leases(app: FastAPI, api: httpx.AsyncClient) -> None:
    session, lease = await _lease(app, api, worker_id="lister")
    workers = (await api.get("/v1/workers")).json()["items"]
    assert [w["id"] for w in workers] == ["lister"]
    w = workers[0]
    assert w["status"] == "connected" and w["kind"] == "neuron" and w["active_leases"] == 1
    assert w["leases"][0]["id"] == lease.lease_id and w["capabilities"][0]["type"] == CAP
    one = (await api.get("/v1/workers/lister")).json()
    assert one["id"] == "lister"
    assert (await api.get("/v1/workers/nobody")).status_code == 404
    await service(app).broker.close_stream(session)
    assert (await api.get("/v1/workers/lister")).json()["status"] == "disconnected"
