"""Flows, agents and executions over the native API: validation, versions, scoping, long-poll, SSE."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.flows.agents import AgentServer, slow
from tests.flows.conftest import chain, register_agents, wait_done

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="session")]


async def test_agents_crud(mapi: httpx.AsyncClient) -> None:
    r = await mapi.post(
        "/v1/agents",
        json={
            "id": "crud",
            "name": "Crud",
            "endpoint": "http://127.0.0.1:9/x/",
            "capabilities": ["a"],
            "type": "processor",
        },
    )
    assert r.status_code == 201, r.text
    agent = r.json()
    assert agent["agent_id"] == "crud" and agent["endpoint"] == "http://127.0.0.1:9/x" and agent["backing"] == "http"
    assert (await mapi.post("/v1/agents", json={"id": "crud", "name": "again"})).status_code == 409
    r = await mapi.post("/v1/agents", json={"name": "no id", "capability": "acme/text/summarize"})
    assert r.status_code == 201 and r.json()["agent_id"].startswith("agt_") and r.json()["backing"] == "worker"
    r = await mapi.patch("/v1/agents/crud", json={"description": "d", "is_active": False})
    assert r.json()["description"] == "d" and r.json()["is_active"] is False
    listed = (await mapi.get("/v1/agents", params={"capability": "a"})).json()
    assert [a["agent_id"] for a in listed["items"]] == ["crud"]
    bad = await mapi.post("/v1/agents", json={"name": "x", "endpoint": "ftp://nope"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"
    metadata = await mapi.post("/v1/agents", json={"name": "x", "endpoint": "http://169.254.169.254/latest"})
    assert metadata.status_code == 400 and "link-local" in metadata.json()["error"]["message"]
    assert (await mapi.delete("/v1/agents/crud")).status_code == 200
    assert (await mapi.get("/v1/agents/crud")).status_code == 404
    assert (await mapi.delete("/v1/agents/crud")).status_code == 404


async def test_validation_reports_every_problem(mapi: httpx.AsyncClient) -> None:
    flow = {
        "flow_id": "bad",
        "entry_point": "nowhere",
        "nodes": [
            {"id": "a", "type": "processor", "agent_id": "ghost", "depends_on": ["c"]},
            {"id": "b", "type": "processor", "depends_on": ["a", "missing"]},
            {"id": "c", "type": "task", "depends_on": ["b"]},
            {"id": "d", "type": "condition", "expression": "import os", "depends_on": ["d"]},
        ],
    }
    r = await mapi.post("/v1/flows", json=flow)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_flow"
    codes = sorted({e["code"] for e in err["details"]["errors"]})
    assert codes == [
        "cycle",
        "invalid_expression",
        "missing_field",
        "self_dependency",
        "unknown_agent",
        "unknown_dependency",
        "unknown_entry_point",
    ]
    cycle = next(e for e in err["details"]["errors"] if e["code"] == "cycle")
    assert set(cycle["nodes"]) == {"a", "b", "c"}
    r = await mapi.post("/v1/flows", json={"flow_id": "x", "nodes": [{"id": "n", "type": "teleport"}]})
    assert r.status_code == 400 and r.json()["error"]["details"]["errors"][0]["field"] == "nodes.0.type"
    r = await mapi.post("/v1/flows/validate", json={"flow_id": "ok", "nodes": [{"id": "n", "type": "noop"}]})
    assert r.status_code == 200 and r.json()["valid"] is True
    assert (await mapi.get("/v1/flows/ok")).status_code == 404


async def test_versions_and_upsert(mapi: httpx.AsyncClient) -> None:
    v1 = {"flow_id": "ver", "name": "V", "nodes": [{"id": "n", "type": "noop"}]}
    r = await mapi.put("/v1/flows/ver", json=v1)
    assert r.status_code == 201 and r.json()["revision"] == 1 and r.json()["version"] == "1.0.0"
    r = await mapi.put("/v1/flows/ver", json=v1)
    assert r.status_code == 200 and r.json()["changed"] is False and r.json()["revision"] == 1
    v2 = {**v1, "nodes": [{"id": "n", "type": "noop"}, {"id": "m", "type": "noop", "depends_on": ["n"]}]}
    r = await mapi.put("/v1/flows/ver", json=v2)
    assert r.json()["revision"] == 2 and r.json()["version"] == "1.0.1"
    assert (await mapi.post("/v1/flows", json=v2)).status_code == 409
    old = (await mapi.get("/v1/flows/ver", params={"version": 1})).json()
    assert [n["id"] for n in old["nodes"]] == ["n"]
    versions = (await mapi.get("/v1/flows/ver/versions")).json()["items"]
    assert [(v["revision"], v["current"]) for v in versions] == [(1, False), (2, True)]
    r = await mapi.post("/v1/flows/ver/executions", json={"input": {"a": 1}, "version": 1})
    done = await wait_done(mapi, r.json()["execution_id"])
    assert done["flow_revision"] == 1 and [n["node_id"] for n in done["nodes"]] == ["n"]
    assert done["output_data"] == {"n": {"a": 1}}
    r = await mapi.put("/v1/flows/other", json=v1)
    assert r.status_code == 400
    assert (await mapi.delete("/v1/flows/ver")).status_code == 200
    assert (await mapi.get("/v1/flows/ver")).status_code == 404


async def test_executions_are_scoped_to_their_owner(mapi: httpx.AsyncClient) -> None:
    await mapi.put("/v1/flows/scoped", json={"flow_id": "scoped", "nodes": [{"id": "n", "type": "noop"}]})
    keys = {}
    for owner in ("alice", "bob"):
        r = await mapi.post("/v1/keys", json={"name": owner, "owner": owner, "scopes": ["read", "write"]})
        keys[owner] = r.json()["key"]
    alice = {"Authorization": f"Bearer {keys['alice']}"}
    bob = {"Authorization": f"Bearer {keys['bob']}"}
    r = await mapi.post("/v1/executions", json={"flow_id": "scoped", "input": {}}, headers=alice)
    exec_id = r.json()["execution_id"]
    assert (await mapi.get(f"/v1/executions/{exec_id}", headers=alice)).status_code == 200
    assert (await mapi.get(f"/v1/executions/{exec_id}", headers=bob)).status_code == 404
    assert (await mapi.post(f"/v1/executions/{exec_id}/cancel", headers=bob)).status_code == 404
    assert exec_id not in {e["execution_id"] for e in (await mapi.get("/v1/executions", headers=bob)).json()["items"]}
    mine = (await mapi.get("/v1/executions", params={"flow_id": "scoped"}, headers=alice)).json()
    assert mine["total"] == 1
    reader = (await mapi.post("/v1/keys", json={"name": "r", "owner": "alice", "scopes": ["read"]})).json()["key"]
    r = await mapi.post("/v1/executions", json={"flow_id": "scoped"}, headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 403
    assert (await mapi.post("/v1/executions", json={"flow_id": "nope"})).status_code == 404
    assert (await mapi.get("/v1/executions", params={"status": "weird"})).status_code == 400
    assert ADMIN_KEY


async def test_wait_long_polls_and_sse_streams(mapi: httpx.AsyncClient, agents: AgentServer) -> None:
    agents.behaviours["nap"] = slow(0.4)
    await register_agents(mapi, agents, "nap")
    await mapi.put("/v1/flows/napper", json=chain("napper", "nap", 2))
    r = await mapi.post("/v1/flows/napper/executions", json={"input": {}})
    exec_id = r.json()["execution_id"]
    short = await mapi.get(f"/v1/executions/{exec_id}/wait", params={"timeout": 0.1})
    assert short.json()["status"] in {"pending", "running"}
    events: list[tuple[str, dict[str, object]]] = []
    async with mapi.stream("GET", f"/v1/executions/{exec_id}/events") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        name = None
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name:
                events.append((name, json.loads(line[6:])))
    assert events[-1] == ("execution", {"execution_id": exec_id, "status": "completed"})
    node_events = [(d["node_id"], d["status"]) for n, d in events if n == "node"]
    assert ("a0", "running") in node_events and ("a1", "completed") in node_events
    assert node_events.index(("a0", "completed")) < node_events.index(("a1", "running"))
    done = await mapi.get(f"/v1/executions/{exec_id}/wait", params={"timeout": 5})
    assert done.json()["status"] == "completed"
    assert (await mapi.get("/v1/executions/exec_nope/events")).status_code == 404
    # a finished execution cannot be cancelled
    r = await mapi.post(f"/v1/executions/{exec_id}/cancel")
    assert r.status_code == 409 and r.json()["error"]["code"] == "execution_finished"
    await asyncio.sleep(0)
