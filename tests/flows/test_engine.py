"""The engine over the native API: DAG order, parallelism, data passing, retries, failures, cancel."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.flows.agents import AgentServer, flaky, slow
from tests.flows.conftest import chain, register_agents, wait_done

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="session")]


async def test_three_agent_flow_passes_outputs(mapi: httpx.AsyncClient, agents: AgentServer) -> None:
    await register_agents(mapi, agents, "upper", "count", "echo")
    flow = {
        "flow_id": "text",
        "name": "Text",
        "entry_point": "in",
        "exit_points": ["out"],
        "nodes": [
            {"id": "in", "type": "input"},
            {"id": "up", "type": "processor", "agent_id": "upper", "depends_on": ["in"]},
            {"id": "cnt", "type": "processor", "agent_id": "count", "depends_on": ["in"]},
            {"id": "both", "type": "processor", "agent_id": "echo", "depends_on": ["up", "cnt"]},
            {"id": "out", "type": "output", "depends_on": ["both"]},
        ],
    }
    r = await mapi.post("/v1/flows", json=flow)
    assert r.status_code == 201, r.text
    r = await mapi.post("/v1/flows/text/executions", json={"input": {"text": "hello big world"}})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    done = await wait_done(mapi, r.json()["execution_id"])
    assert done["status"] == "completed", done
    echo = done["output_data"]["out"]["echo"]
    assert echo["text"] == "HELLO BIG WORLD" and echo["words"] == 3
    nodes = {n["node_id"]: n for n in done["nodes"]}
    assert all(n["status"] == "completed" and n["attempts"] == 1 for n in nodes.values())
    assert nodes["both"]["input_data"]["upper_by"] == "up"
    assert nodes["up"]["execution_time_ms"] is not None


async def test_parallel_branches_run_concurrently(mapi: httpx.AsyncClient, agents: AgentServer) -> None:
    agents.behaviours["slow"] = slow(0.6)
    await register_agents(mapi, agents, "slow")
    nodes = [{"id": "in", "type": "input"}]
    nodes += [{"id": f"s{i}", "agent_id": "slow", "depends_on": ["in"]} for i in range(4)]
    nodes += [{"id": "join", "type": "output", "depends_on": [f"s{i}" for i in range(4)]}]
    assert (await mapi.post("/v1/flows", json={"flow_id": "fan", "nodes": nodes})).status_code == 201
    r = await mapi.post("/v1/executions", json={"flow_id": "fan", "input": {}})
    done = await wait_done(mapi, r.json()["execution_id"])
    assert done["status"] == "completed"
    assert agents.max_active >= 3  # the agent saw the branches at the same time
    starts = sorted(n["started_at"] for n in done["nodes"] if n["node_id"].startswith("s"))
    ends = sorted(n["completed_at"] for n in done["nodes"] if n["node_id"].startswith("s"))
    assert starts[-1] < ends[0]  # every branch started before the first one ended


async def test_retries_with_backoff_then_success(mapi: httpx.AsyncClient, agents: AgentServer) -> None:
    agents.behaviours["flaky"] = flaky(2)
    await register_agents(mapi, agents, "flaky")
    flow = chain("retry", "flaky", 1, defaults={"retry": {"max_attempts": 3, "backoff_seconds": 0.05}})
    assert (await mapi.post("/v1/flows", json=flow)).status_code == 201
    r = await mapi.post("/v1/flows/retry/executions", json={"input": {}})
    done = await wait_done(mapi, r.json()["execution_id"])
    assert done["status"] == "completed", done
    node = next(n for n in done["nodes"] if n["node_id"] == "a0")
    assert node["attempts"] == 3
    assert [e["attempt"] for e in node["attempt_log"]] == [1, 2]
    assert all("503" in e["error"] for e in node["attempt_log"])
    assert node["attempt_log"][1]["retry_in_seconds"] == pytest.approx(0.1)
    assert agents.count("flaky") == 3


async def test_cancel_aborts_running_agent_call(mapi: httpx.AsyncClient, agents: AgentServer) -> None:
    agents.behaviours["slow"] = slow(5)
    await register_agents(mapi, agents, "slow")
    assert (await mapi.post("/v1/flows", json=chain("long", "slow", 2))).status_code == 201
    r = await mapi.post("/v1/flows/long/executions", json={"input": {}})
    exec_id = r.json()["execution_id"]
    for _ in range(100):
        if agents.count("slow"):
            break
        await asyncio.sleep(0.02)
    started = time.monotonic()
    r = await mapi.post(f"/v1/executions/{exec_id}/cancel")
    assert r.status_code == 200
    done = await wait_done(mapi, exec_id, timeout=5)
    assert time.monotonic() - started < 2
    assert done["status"] == "cancelled"
    nodes = {n["node_id"]: n["status"] for n in done["nodes"]}
    assert nodes == {"in": "completed", "a0": "cancelled", "a1": "cancelled", "out": "cancelled"}
    # cancelling again is idempotent; a finished execution cannot be cancelled
    assert (await mapi.post(f"/v1/executions/{exec_id}/cancel")).json()["status"] == "cancelled"


async def test_conditions_skip_branches_and_map_fans_out(mapi: httpx.AsyncClient, agents: AgentServer) -> None:
    await register_agents(mapi, agents, "upper", "echo")
    flow = {
        "flow_id": "logic",
        "nodes": [
            {"id": "in", "type": "input"},
            {"id": "big", "type": "condition", "expression": "len(input.words) > 2", "depends_on": ["in"]},
            {
                "id": "each",
                "type": "map",
                "depends_on": ["big"],
                "when": "nodes.big.output.result",
                "map": {
                    "items": "input.words",
                    "concurrency": 2,
                    "node": {"type": "processor", "agent_id": "upper", "input": {"text": "${item}"}},
                },
            },
            {"id": "small", "agent_id": "echo", "depends_on": ["big"], "when": "not nodes.big.output.result"},
            {"id": "after_small", "type": "noop", "depends_on": ["small"]},
            {
                "id": "out",
                "type": "output",
                "depends_on": ["each", "after_small"],
                "input": {
                    "texts": "${[r.text for r in nodes.each.output.results] if False else nodes.each.output.count}"
                },
            },
        ],
    }
    r = await mapi.post("/v1/flows", json=flow)
    assert r.status_code == 400  # comprehensions are not allowed in expressions
    assert r.json()["error"]["details"]["errors"][0]["code"] == "invalid_expression"
    flow["nodes"][-1]["input"] = {
        "count": "${nodes.each.output.count}",
        "first": "${nodes.each.output.results[0].text}",
    }
    assert (await mapi.post("/v1/flows", json=flow)).status_code == 201, r.text
    r = await mapi.post("/v1/flows/logic/executions", json={"input": {"words": ["a", "b", "c"]}})
    done = await wait_done(mapi, r.json()["execution_id"])
    assert done["status"] == "completed", done
    assert done["output_data"] == {"out": {"count": 3, "first": "A"}}
    nodes = {n["node_id"]: n for n in done["nodes"]}
    assert nodes["small"]["status"] == "skipped" and nodes["after_small"]["status"] == "skipped"
    assert [nodes[f"each[{i}]"]["output_data"]["text"] for i in range(3)] == ["A", "B", "C"]
    assert nodes["each[1]"]["parent_id"] == "each"

    r = await mapi.post("/v1/flows/logic/executions", json={"input": {"words": ["x"]}})
    done = await wait_done(mapi, r.json()["execution_id"])
    nodes = {n["node_id"]: n["status"] for n in done["nodes"]}
    assert nodes["each"] == "skipped" and nodes["small"] == "completed"
    assert done["status"] == "completed"  # reading a skipped node's output gives null
    assert done["output_data"] == {"out": {"count": None, "first": None}}


async def test_unavailable_node_kind_fails_clearly(mapi: httpx.AsyncClient) -> None:
    registry = mapi.app.state.ctx.services["flow_executors"]  # type: ignore[attr-defined]
    removed = registry.disable("python", "python nodes are switched off on this server")
    try:
        flow = {"flow_id": "py", "nodes": [{"id": "p", "type": "python", "code": "output = 1"}]}
        assert (await mapi.post("/v1/flows", json=flow)).status_code == 201
        r = await mapi.post("/v1/flows/py/executions", json={"input": {}})
        done = await wait_done(mapi, r.json()["execution_id"])
        assert done["status"] == "failed"
        assert done["error_message"] == "node 'p' failed: python nodes are switched off on this server"
        assert done["error"]["code"] == "executor_unavailable"
    finally:
        registry.register("python", removed)
    flow = {"flow_id": "sk", "nodes": [{"id": "s", "type": "skill", "skill": "no-such-skill"}]}
    assert (await mapi.post("/v1/flows", json=flow)).status_code == 201
    r = await mapi.post("/v1/flows/sk/executions", json={"input": {}})
    done = await wait_done(mapi, r.json()["execution_id"])
    assert done["status"] == "failed" and "skill 'no-such-skill'" in done["error_message"]
