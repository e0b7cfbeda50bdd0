"""Agents that fail, hang or are slow: retries per policy, then the node's error; no head-of-line blocking."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.flows.agents import AgentServer, fail500, slow
from tests.flows.conftest import agents, chain, mapi, module_db_url, register_agents, wait_done

__all__ = ["agents", "mapi", "module_db_url"]
pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="session")]


async def test_agent_500_fails_execution_with_node_error(mapi: httpx.AsyncClient, agents: AgentServer) -> None:
    agents.behaviours["bad"] = fail500
    await register_agents(mapi, agents, "bad", "echo")
    flow = {
        "flow_id": "broken",
        "nodes": [
            {"id": "in", "type": "input"},
            {"id": "b", "agent_id": "bad", "depends_on": ["in"], "retry": {"max_attempts": 2, "backoff_seconds": 0}},
            {"id": "after", "agent_id": "echo", "depends_on": ["b"]},
        ],
    }
    assert (await mapi.post("/v1/flows", json=flow)).status_code == 201
    r = await mapi.post("/v1/flows/broken/executions", json={"input": {"x": 1}})
    done = await wait_done(mapi, r.json()["execution_id"])
    assert done["status"] == "failed"
    assert done["error_message"].startswith("node 'b' failed: agent 'bad' answered HTTP 500")
    assert done["error"]["node_id"] == "b"
    nodes = {n["node_id"]: n for n in done["nodes"]}
    assert nodes["b"]["status"] == "failed" and nodes["b"]["attempts"] == 2
    assert nodes["after"]["status"] == "cancelled"
    assert agents.count("bad") == 2 and agents.count("echo") == 0


async def test_agent_timeout_is_retried_then_fails(mapi: httpx.AsyncClient, agents: AgentServer) -> None:
    agents.behaviours["hang"] = slow(3)
    await register_agents(mapi, agents, "hang")
    flow = chain("hang", "hang", 1)
    flow["nodes"][1].update(timeout_seconds=0.3, retry={"max_attempts": 2, "backoff_seconds": 0.05})
    assert (await mapi.post("/v1/flows", json=flow)).status_code == 201
    started = time.monotonic()
    r = await mapi.post("/v1/flows/hang/executions", json={"input": {}})
    done = await wait_done(mapi, r.json()["execution_id"])
    assert time.monotonic() - started < 5  # two 0.3 s attempts, not two 3 s ones
    assert done["status"] == "failed"
    assert "timed out after 0.3s" in done["error_message"]
    node = next(n for n in done["nodes"] if n["node_id"] == "a0")
    assert node["attempts"] == 2 and node["error"]["code"] == "agent_timeout"


async def test_slow_agent_does_not_block_other_executions(mapi: httpx.AsyncClient, agents: AgentServer) -> None:
    agents.behaviours["glacial"] = slow(6)
    await register_agents(mapi, agents, "glacial", "echo")
    await mapi.put("/v1/flows/glacial", json=chain("glacial", "glacial", 1))
    await mapi.put("/v1/flows/quick", json=chain("quick", "echo", 3))
    slow_id = (await mapi.post("/v1/flows/glacial/executions", json={"input": {}})).json()["execution_id"]
    quick = await asyncio.gather(
        *(mapi.post("/v1/flows/quick/executions", json={"input": {"i": i}}) for i in range(10))
    )
    results = await asyncio.gather(*(wait_done(mapi, r.json()["execution_id"]) for r in quick))
    assert all(r["status"] == "completed" for r in results)
    still = (await mapi.get(f"/v1/executions/{slow_id}")).json()
    assert still["status"] == "running"  # the quick ones finished while the slow agent was still busy
    assert (await mapi.post(f"/v1/executions/{slow_id}/cancel")).status_code == 200
