"""Native trust API (/v1/reviews, /v1/secrets, /v1/symbiont-agents, /v1/agent-deployments) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

from portside.server.app import create_app
from portside.server.reviews import verify_tool
from portside.server.sandboxes.drivers import safefs
from portside.server.settings import Settings

TOOL = {
    "name": "weather_lookup",
    "description": "Returns the current weather for a city.",
    "inputSchema": {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "provider": {"name": "acme", "public_key_url": "https://acme.example/pk.pem"},
}
DSL = """
metadata { version = "1.0" author = "qa" description = "echo agent" }
agent echo(input: String) -> String {
    capabilities = ["echo"]
    policy only_echo { allow: echo(input) }
}
"""


async def make_key(api: httpx.AsyncClient, scopes: list[str], owner: str) -> dict[str, str]:
    r = await api.post("/v1/keys", json={"name": owner, "scopes": scopes, "owner": owner})
    return {"Authorization": f"Bearer {r.json()['key']}"}


async def submit(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await api.post("/v1/reviews", json={"tool": TOOL, **body})
    assert r.status_code == 201, r.text
    waited = await api.get(f"/v1/reviews/{r.json()['review_id']}/wait", params={"timeout": 60})
    assert waited.status_code == 200
    return dict(waited.json())


async def test_review_lifecycle_and_signing_keys(api: httpx.AsyncClient) -> None:
    s = await submit(api, submitted_by="dev@example.com", priority="high")
    rid = s["review_id"]
    assert s["status"] == "pending_review" and s["priority"] == "high" and s["risk_score"] <= 25
    assert s["tool"]["schema"]["properties"]["city"]["enum"] == ["Paris", "Oslo"] and "inputSchema" not in s["tool"]
    analysis = (await api.get(f"/v1/reviews/{rid}/analysis")).json()
    assert (await api.get(f"/v1/analyses/{analysis['analysis_id']}")).json()["risk_score"] == s["risk_score"]

    listed = (await api.get("/v1/reviews", params={"status": "pending_review", "author": "dev@example.com"})).json()
    assert [i["review_id"] for i in listed["items"]] == [rid] and listed["total"] == 1
    second = await submit(api, submitted_by="dev@example.com")
    page = (await api.get("/v1/reviews", params={"author": "dev@example.com", "limit": 1, "page": 2})).json()
    assert page["total"] == 2 and page["items"][0]["review_id"] == rid and page["has_next"] is False

    claimed = (await api.post(f"/v1/reviews/{rid}/claim", json={"reviewer_id": "rita"})).json()
    assert claimed["status"] == "under_review" and claimed["state"]["human_reviewer_id"] == "rita"
    bad = await api.post(f"/v1/reviews/{rid}/decision", json={"decision": "maybe"})
    assert bad.status_code == 400
    approved = (await api.post(f"/v1/reviews/{rid}/decision", json={"decision": "approve", "reason": "fine"})).json()
    assert approved["status"] == "approved" and approved["decision_reason"] == "fine"
    again = await api.post(f"/v1/reviews/{rid}/decision", json={"decision": "reject"})
    assert again.status_code == 409

    rejected = (await api.post(f"/v1/reviews/{second['review_id']}/decision", json={"decision": "reject"})).json()
    assert rejected["status"] == "rejected"
    assert (await api.post(f"/v1/reviews/{second['review_id']}/sign")).status_code == 409
    assert (await api.get(f"/v1/reviews/{second['review_id']}/signed")).status_code == 404

    signed = (await api.post(f"/v1/reviews/{rid}/sign")).json()
    assert signed == (await api.post(f"/v1/reviews/{rid}/sign")).json()  # signing is idempotent
    assert verify_tool(signed["tool"], signed["signature"], signed["public_key_pem"])
    assert signed["key_status"] == "active" and signed["signer_id"]

    rotated = (await api.post("/v1/signing-keys/rotate")).json()
    assert rotated["status"] == "active" and rotated["fingerprint"] != signed["key_fingerprint"]
    after = (await api.get(f"/v1/reviews/{rid}/signed")).json()
    assert after["key_status"] == "retired" and after["signature"] == signed["signature"]
    keys = (await api.get("/v1/signing-keys")).json()["items"]
    assert {k["status"] for k in keys} == {"active", "retired"}
    well_known = (await api.get("/.well-known/schemapin.json")).json()
    assert well_known["public_key_pem"] == rotated["public_key_pem"] and well_known["revoked_keys"] == []
    revoked = await api.post(f"/v1/signing-keys/{signed['key_fingerprint']}/revoke", json={"reason": "superseded"})
    assert revoked.json()["status"] == "revoked"
    doc = (await api.get("/.well-known/schemapin-revocations.json")).json()
    assert doc["revoked_keys"][0]["fingerprint"] == signed["key_fingerprint"]

    writer = await make_key(api, ["read", "write"], "w")
    assert (await api.post("/v1/signing-keys/rotate", headers=writer)).status_code == 403
    assert (await api.get(f"/v1/reviews/{rid}", headers=writer)).status_code == 404  # not theirs
    assert (await api.post("/v1/reviews", json={"tool": {"description": "no name"}})).status_code == 400
    assert (await api.get("/v1/reviews/rev_missing")).status_code == 404


async def test_secrets_native_api_and_backend_persistence(api: httpx.AsyncClient, app: FastAPI) -> None:
    put = await api.put("/v1/secrets/bot-1/openai", json={"value": "sk-abc", "description": "LLM key"})
    assert put.status_code == 200 and put.json()["description"] == "LLM key" and "sk-abc" not in put.text
    listing = (await api.get("/v1/secrets/bot-1")).json()
    assert listing["secrets"] == ["openai"] and listing["items"][0]["description"] == "LLM key"
    assert (await api.get("/v1/secrets/bot-1/openai")).json()["value"] == "sk-abc"
    assert (await api.get("/v1/secrets/bot-1/nope")).status_code == 404
    assert (await api.get("/v1/secrets/bad name!")).status_code == 400
    assert (await api.delete("/v1/secrets/bot-1/openai")).json()["deleted"] is True
    assert (await api.delete("/v1/secrets/bot-1/openai")).status_code == 404

    events = (await api.get("/v1/audit/secrets", params={"agent_id": "bot-1", "limit": 3})).json()
    assert len(events["items"]) == 3 and events["next_cursor"]
    older = (await api.get("/v1/audit/secrets", params={"agent_id": "bot-1", "cursor": events["next_cursor"]})).json()
    actions = [e["action"] for e in events["items"] + older["items"]]
    assert actions[-1] == "write" and "read" in actions and "list" in actions

    settings: Settings = app.state.ctx.settings
    other_file = settings.data_dir / "secrets" / "other-secrets.json"
    writer = await make_key(api, ["read", "write"], "w2")
    cfg = {"backend_type": "encrypted_file", "file_path": "other-secrets.json"}
    assert (await api.put("/v1/secret-backend", json=cfg, headers=writer)).status_code == 403
    assert (await api.put("/v1/secret-backend", json=cfg)).json()["file_path"] == str(other_file)
    await api.put("/v1/secrets/bot-2/k", json={"value": "v2"})
    assert other_file.exists()

    # A second server on the same store restores the configured backend.
    second = create_app(settings)
    async with second.router.lifespan_context(second):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=second), base_url="http://x", headers=dict(api.headers)
        ) as c2:
            assert (await c2.get("/v1/secret-backend")).json()["file_path"] == str(other_file)
            assert (await c2.get("/v1/secrets/bot-2/k")).json()["value"] == "v2"


async def test_agents_dsl_and_deployment_lifecycle(api: httpx.AsyncClient, app: FastAPI) -> None:
    bad = (
        await api.post("/v1/symbiont-agents/compile", json={"dsl_content": "agent x {\n  capabilities = [\n}"})
    ).json()
    assert bad["success"] is False and bad["diagnostics"][0]["line"] == 3 and bad["diagnostics"][0]["column"] == 1
    only = (await api.post("/v1/symbiont-agents/compile", json={"dsl_content": DSL, "validate_only": True})).json()
    assert only["success"] is True and only["agent_id"] is None
    compiled = (await api.post("/v1/symbiont-agents/compile", json={"dsl_content": DSL, "agent_name": "echo"})).json()
    assert compiled["agent_id"] == "echo"
    agent = (await api.get("/v1/symbiont-agents/echo")).json()
    assert agent["origin"] == "dsl" and agent["definition"]["policies"][0]["name"] == "only_echo"
    assert (await api.get("/v1/symbiont-agents/echo/status")).json()["state"] == "idle"

    dep = (await api.post("/v1/agent-deployments", json={"agent_id": "echo"})).json()
    dep_id = dep["deployment_id"]
    try:
        assert dep["status"] == "running", dep
        assert dep["usage"]["pid"] and dep["sandbox_id"]
        ok = (await api.post(f"/v1/agent-deployments/{dep_id}/tasks", json={"action": "echo", "input": "hi"})).json()
        no = (await api.post(f"/v1/agent-deployments/{dep_id}/tasks", json={"action": "rm", "input": "x"})).json()
        results: dict[str, Any] = {}
        for _ in range(100):
            for t in (ok, no):
                r = await api.get(f"/v1/agent-deployments/{dep_id}/tasks/{t['task_id']}")
                results[t["task_id"]] = r.json()
            if all(v["status"] != "queued" for v in results.values()):
                break
            await asyncio.sleep(0.1)
        assert results[ok["task_id"]]["status"] == "completed"
        assert results[ok["task_id"]]["output"]["input"] == "hi"
        assert results[no["task_id"]]["status"] == "failed" and "not allowed" in results[no["task_id"]]["error"]
        status = (await api.get("/v1/symbiont-agents/echo/status")).json()
        assert status["state"] in ("active", "busy") and status["resource_usage"]["memory_bytes"] > 1_000_000
        assert status["sandboxes"][0]["processes"] >= 2  # the sandbox agent, kernel and our runtime
        metrics = (await api.get("/v1/symbiont-agents/echo/metrics")).json()
        assert metrics["tasks_completed"] == 1 and metrics["tasks_failed"] == 1
        detail = (await api.get(f"/v1/agent-deployments/{dep_id}")).json()
        assert detail["sandbox"]["alive"] is True
        assert isinstance((await api.get(f"/v1/agent-deployments/{dep_id}/logs")).json()["log"], str)
    finally:
        stopped = (await api.post(f"/v1/agent-deployments/{dep_id}/stop")).json()
    assert stopped["status"] == "stopped" and stopped["usage"]["tasks_completed"] == 1
    assert (await api.get(f"/v1/sandboxes/{dep['sandbox_id']}")).status_code == 404  # sandbox deleted
    assert (await api.post(f"/v1/agent-deployments/{dep_id}/tasks", json={})).status_code == 409

    # A runtime that exits on its own is detected by the monitor and marked failed.
    dep2 = (await api.post("/v1/agent-deployments", json={"agent_id": "echo"})).json()
    service = app.state.ctx.services["agent_deployments"]
    live = service._live[dep2["deployment_id"]]
    safefs.touch(live.workspace, live.path("stop"))
    for _ in range(50):
        await service.check()
        row = (await api.get(f"/v1/agent-deployments/{dep2['deployment_id']}")).json()
        if row["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert row["status"] == "failed" and "exited" in row["last_error"]
    assert (await api.get("/v1/symbiont-agents/echo/status")).json()["state"] == "error"
    assert len((await api.get("/v1/agent-deployments", params={"agent_id": "echo"})).json()["items"]) == 2
    other = await make_key(api, ["read", "write"], "stranger")
    assert (await api.get(f"/v1/agent-deployments/{dep_id}", headers=other)).status_code == 404
    assert (await api.post("/v1/agent-deployments", json={"agent_id": "echo"}, headers=other)).status_code == 404
