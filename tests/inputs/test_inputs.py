"""HTTP inputs: signed webhooks start flow executions; limits, routing, auth and audit (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="module")]
SECRET = "whsec-test-0123456789"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def make_flow(api: httpx.AsyncClient, flow_id: str) -> None:
    r = await api.post("/v1/flows", json={"flow_id": flow_id, "nodes": [{"id": "out", "type": "noop"}]})
    assert r.status_code in (201, 409), r.text


async def make_input(api: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    r = await api.post("/v1/inputs", json=spec)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def test_signed_webhook_starts_a_flow_execution(api: httpx.AsyncClient, public: httpx.AsyncClient) -> None:
    await make_flow(api, "echo")
    hook = await make_input(
        api, name="github", flow_id="echo", secret=SECRET, wait_seconds=10, forward_headers=["X-GitHub-Event"]
    )
    assert hook["target"] == "flow:echo" and hook["has_secret"] is True and SECRET not in json.dumps(hook)
    assert hook["url"].endswith(f"/hooks/{hook['id']}") and hook["status"] == "running"

    body = json.dumps({"ref": "refs/heads/main", "commits": 2}).encode()
    r = await public.post(
        f"/hooks/{hook['id']}",
        content=body,
        headers={"Content-Type": "application/json", "X-Signature-256": sign(body), "X-GitHub-Event": "push"},
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "completed" and answer["target"] == "flow:echo"
    envelope = answer["output"]["out"]
    assert envelope["body"] == {"ref": "refs/heads/main", "commits": 2}
    assert envelope["headers"] == {"x-github-event": "push"} and envelope["input_id"] == hook["id"]

    execution = (await api.get(f"/v1/executions/{answer['execution_id']}")).json()
    assert execution["status"] == "completed" and execution["flow_id"] == "echo"
    assert execution["metadata"]["input_id"] == hook["id"] and execution["metadata"]["source"] == "http_input"

    # GitHub's own header name works too
    r = await public.post(f"/hooks/{hook['id']}", content=body, headers={"X-Hub-Signature-256": sign(body)})
    assert r.status_code == 200, r.text

    audit = (await api.get(f"/v1/inputs/{hook['id']}/requests")).json()
    assert audit["total"] == 2 and audit["items"][0]["outcome"] == "completed"
    assert audit["items"][0]["ref"] and audit["items"][0]["source"] == "webhook"


async def test_bad_or_missing_signature_is_refused(api: httpx.AsyncClient, public: httpx.AsyncClient) -> None:
    await make_flow(api, "echo")
    hook = await make_input(api, flow_id="echo", secret=SECRET)
    body = b'{"a": 1}'
    cases = [
        ({"X-Signature-256": sign(body, "wrong-secret-123")}, "invalid_signature"),
        ({"X-Signature-256": sign(b'{"a": 2}')}, "invalid_signature"),  # signature of another body
        ({"X-Signature-256": "sha256=zz"}, "invalid_signature"),
        ({}, "missing_signature"),
    ]
    for headers, code in cases:
        r = await public.post(f"/hooks/{hook['id']}", content=body, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == code, (headers, r.text)
    metrics = (await api.get(f"/v1/inputs/{hook['id']}/metrics")).json()
    assert metrics["rejected"] == {"invalid_signature": 3, "missing_signature": 1}
    assert metrics["requests_processed"] == 0 and metrics["audited"] == {}
    executions = (await api.get("/v1/executions", params={"flow_id": "echo"})).json()
    assert all(e["metadata"].get("input_id") != hook["id"] for e in executions["items"])
    # rotating the secret: the old signature stops working, removing it opens the endpoint
    r = await api.patch(f"/v1/inputs/{hook['id']}", json={"secret": "a-brand-new-secret"})
    assert r.json()["has_secret"] is True
    ok = await public.post(
        f"/hooks/{hook['id']}", content=body, headers={"X-Signature-256": sign(body, "a-brand-new-secret")}
    )
    assert ok.status_code == 202  # no wait configured: accepted, running in the background
    r = await api.patch(f"/v1/inputs/{hook['id']}", json={"secret": None})
    assert r.json()["has_secret"] is False
    assert (await public.post(f"/hooks/{hook['id']}", content=body)).status_code == 202


async def test_rate_limit_answers_429(api: httpx.AsyncClient, public: httpx.AsyncClient) -> None:
    await make_flow(api, "echo")
    hook = await make_input(api, flow_id="echo", rate_limit_per_minute=6, rate_limit_burst=3)
    codes = [(await public.post(f"/hooks/{hook['id']}", json={"n": i})).status_code for i in range(3)]
    assert codes == [202, 202, 202]
    r = await public.post(f"/hooks/{hook['id']}", json={"n": 4})
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
    assert int(r.headers["Retry-After"]) >= 1
    # authenticated triggers are not subject to the endpoint's limit
    t = await api.post(f"/v1/inputs/{hook['id']}/trigger", json={"payload": {"manual": True}})
    assert t.status_code == 200 and t.json()["response_code"] == 202
    metrics = (await api.get(f"/v1/inputs/{hook['id']}/metrics")).json()
    assert metrics["rejected"] == {"quota_exceeded": 1} and metrics["requests_processed"] == 4
    # other inputs have their own buckets
    other = await make_input(api, flow_id="echo", rate_limit_per_minute=6, rate_limit_burst=3)
    assert (await public.post(f"/hooks/{other['id']}", json={})).status_code == 202


async def test_accepted_execution_finishes_and_limits(api: httpx.AsyncClient, public: httpx.AsyncClient) -> None:
    await make_flow(api, "echo")
    hook = await make_input(api, flow_id="echo", max_body_bytes=100)
    r = await public.post(f"/hooks/{hook['id']}", json={"x": 1})
    assert r.status_code == 202 and r.json()["status"] == "accepted"
    execution_id = r.json()["execution_id"]
    waited = await api.get(f"/v1/executions/{execution_id}/wait", params={"timeout": 10})
    if waited.status_code == 404:  # no long-poll route: poll
        for _ in range(100):
            waited = await api.get(f"/v1/executions/{execution_id}")
            if waited.json()["status"] == "completed":
                break
            await asyncio.sleep(0.1)
    assert waited.json()["status"] == "completed"
    big = await public.post(f"/hooks/{hook['id']}", content=b"x" * 101)
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    bad_json = await public.post(f"/hooks/{hook['id']}", content=b"{nope", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_body"
    text = await public.post(f"/hooks/{hook['id']}", content=b"plain words", headers={"Content-Type": "text/plain"})
    assert text.status_code == 202

    assert (await api.post(f"/v1/inputs/{hook['id']}/stop")).json()["status"] == "stopped"
    stopped = await public.post(f"/hooks/{hook['id']}", json={})
    assert stopped.status_code == 503 and stopped.json()["error"]["code"] == "input_stopped"
    assert (await api.post(f"/v1/inputs/{hook['id']}/start")).json()["status"] == "running"
    assert (await public.post(f"/hooks/{hook['id']}", json={})).status_code == 202
    assert (await public.post("/hooks/inp_unknown", json={})).status_code == 404
    assert (await api.delete(f"/v1/inputs/{hook['id']}")).json()["deleted"] is True
    assert (await public.post(f"/hooks/{hook['id']}", json={})).status_code == 404


async def test_routing_rules_response_control_and_failures(api: httpx.AsyncClient, public: httpx.AsyncClient) -> None:
    await make_flow(api, "echo")
    await make_flow(api, "orders")
    hook = await make_input(
        api,
        target="flow:echo",
        wait_seconds=10,
        routing_rules=[
            {"condition_type": "path_prefix", "condition_value": "/orders", "agent_id": "flow:orders"},
            {
                "condition_type": "json_field_equals",
                "condition_target": "kind.name",
                "condition_value": "order",
                "agent_id": "orders",
            },
            {
                "condition_type": "header_equals",
                "condition_target": "X-Route",
                "condition_value": "ghost",
                "agent_id": "flow:ghost",
            },
        ],
        response_control={"default_status": 201, "error_status": 502, "echo_input_on_error": True},
    )
    by_path = await public.post(f"/hooks/{hook['id']}/orders/new", json={"a": 1})
    assert by_path.status_code == 201 and by_path.json()["target"] == "flow:orders"
    assert by_path.json()["output"]["out"]["path"] == "/orders/new"
    by_field = await public.post(f"/hooks/{hook['id']}", json={"kind": {"name": "order"}})
    assert by_field.json()["target"] == "orders"  # a bare id: no Symbiont agent has it, so it is a flow
    default = await public.post(f"/hooks/{hook['id']}", json={"kind": {"name": "other"}})
    assert default.status_code == 201 and default.json()["target"] == "flow:echo"
    missing = await public.post(f"/hooks/{hook['id']}", json={"q": 1}, headers={"X-Route": "ghost"})
    assert missing.status_code == 502 and missing.json()["status"] == "failed"
    assert missing.json()["error"]["code"] == "flow_not_found" and missing.json()["input"] == {"q": 1}
    info = (await api.get(f"/v1/inputs/{hook['id']}")).json()
    assert "ghost" in info["last_error"] and info["requests_processed"] == 4

    # an agent target without a running deployment fails cleanly
    r = await api.post(
        "/api/v1/agents",
        json={
            "id": "hooked",
            "name": "n",
            "description": "d",
            "system_prompt": "s",
            "tools": [],
            "model": "m",
            "temperature": 0.1,
            "top_p": 1.0,
            "max_tokens": 5,
        },
    )
    assert r.status_code == 200, r.text
    agent_hook = await make_input(api, agent_id="hooked")
    failed = await public.post(f"/hooks/{agent_hook['id']}", json={})
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "agent_not_deployed"


async def test_auth_header_jwt_cors_and_owners(
    api: httpx.AsyncClient, public: httpx.AsyncClient, tmp_path: Path
) -> None:
    await make_flow(api, "echo")
    hook = await make_input(api, flow_id="echo", auth_header="Bearer hook-token", cors_enabled=True)
    assert hook["has_auth_header"] and "hook-token" not in json.dumps(hook)
    assert (await public.post(f"/hooks/{hook['id']}", json={})).status_code == 401
    ok = await public.post(f"/hooks/{hook['id']}", json={}, headers={"Authorization": "Bearer hook-token"})
    assert ok.status_code == 202 and ok.headers["access-control-allow-origin"] == "*"
    pre = await public.options(f"/hooks/{hook['id']}")
    assert pre.status_code == 204 and "POST" in pre.headers["access-control-allow-methods"]

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "hook.pub").write_bytes(pem)
    jwt_hook = await make_input(api, flow_id="echo", jwt_public_key_path=str(tmp_path / "hook.pub"))
    token = jwt.encode({"sub": "ci", "exp": int(time.time()) + 60}, key, algorithm="ES256")
    good = await public.post(f"/hooks/{jwt_hook['id']}", json={}, headers={"Authorization": f"Bearer {token}"})
    assert good.status_code == 202, good.text
    other = jwt.encode({"sub": "ci"}, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    bad = await public.post(f"/hooks/{jwt_hook['id']}", json={}, headers={"Authorization": f"Bearer {other}"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_token"

    created = await api.post("/v1/keys", json={"name": "bob", "scopes": ["read", "write"], "owner": "bob"})
    bob = {"Authorization": f"Bearer {created.json()['key']}"}
    assert (await api.get(f"/v1/inputs/{hook['id']}", headers=bob)).status_code == 404
    assert (await api.post(f"/v1/inputs/{hook['id']}/trigger", json={}, headers=bob)).status_code == 404
    r = await api.post("/v1/inputs", json={"flow_id": "echo", "jwt_public_key_path": "/etc/passwd"}, headers=bob)
    assert r.status_code == 403  # only admins point inputs at server files
    mine = await api.post("/v1/inputs", json={"flow_id": "echo"}, headers=bob)
    assert mine.status_code == 201
    listed = (await api.get("/v1/inputs", headers=bob)).json()["items"]
    assert [i["id"] for i in listed] == [mine.json()["id"]]
    bad_spec = await api.post("/v1/inputs", json={"flow_id": "echo", "agent_id": "x"})
    assert bad_spec.status_code == 400


@pytest.mark.bwrap
async def test_webhook_gives_a_deployed_agent_a_task(api: httpx.AsyncClient, public: httpx.AsyncClient) -> None:
    agent = {
        "id": "hook-agent",
        "name": "Hook agent",
        "description": "d",
        "system_prompt": "s",
        "tools": ["t"],
        "model": "m",
        "temperature": 0.1,
        "top_p": 1.0,
        "max_tokens": 5,
    }
    assert (await api.post("/api/v1/agents", json=agent)).status_code == 200
    dep = (await api.post("/v1/agent-deployments", json={"agent_id": "hook-agent"})).json()
    try:
        assert dep["status"] == "running", dep
        hook = await make_input(api, target="hook-agent", wait_seconds=10)  # a bare id: the Symbiont agent
        r = await public.post(f"/hooks/{hook['id']}", json={"issue": 7})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["status"] == "completed" and answer["deployment_id"] == dep["deployment_id"]
        assert answer["output"]["agent_id"] == "hook-agent" and answer["output"]["input"]["body"] == {"issue": 7}
        task = (await api.get(answer["status_url"])).json()
        assert task["status"] == "completed" and task["action"] == "webhook"
    finally:
        await api.post(f"/v1/agent-deployments/{dep['deployment_id']}/stop")
