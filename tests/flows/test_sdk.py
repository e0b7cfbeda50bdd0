"""The Portside SDK (sync and async) against a live server: client.agents, client.flows, client.executions."""

from __future__ import annotations

import pytest

import portside
from tests.conftest import ADMIN_KEY, LiveServer
from tests.flows.agents import AgentServer, slow
from tests.flows.conftest import chain

pytestmark = pytest.mark.timeout(60)


def test_sync_sdk(live_server: LiveServer, agents: AgentServer) -> None:
    agents.behaviours["nap"] = slow(0.3)
    with portside.Client(live_server.url, ADMIN_KEY) as c:
        upper = c.agents.create(id="upper", name="Upper", endpoint=agents.endpoint("upper"), capabilities=["text"])
        assert upper.agent_id == "upper" and upper.id == "upper" and upper.backing == "http"
        c.agents.create(id="nap", name="Nap", endpoint=agents.endpoint("nap"))
        assert {a.agent_id for a in c.agents.list(capability="text")} == {"upper"}
        assert c.agents.update("upper", description="loud").description == "loud"

        with pytest.raises(portside.ValidationError) as invalid:
            c.flows.create({"flow_id": "bad", "nodes": [{"id": "a", "agent_id": "ghost"}]})
        assert invalid.value.details["errors"][0]["code"] == "unknown_agent"
        assert c.flows.validate(chain("ok", "upper", 1))["valid"] is True

        flow = c.flows.create(chain("shout", "upper", 1))
        assert flow.revision == 1 and [n["id"] for n in flow.nodes] == ["in", "a0", "out"]
        again = c.flows.upsert({**chain("shout", "upper", 2)})
        assert again.revision == 2 and [v.revision for v in c.flows.versions("shout")] == [1, 2]
        assert "shout" in {f.flow_id for f in c.flows.list()}

        done = c.flows.run("shout", {"text": "hi"}, timeout=20)
        assert done.status == "completed" and done.is_terminal
        assert done.output_data == {"out": {"text": "HI", "upper_by": "a1"}}
        assert done.node("a0").status == "completed" and done.node("a0").attempts == 1
        assert c.executions.get(done.execution_id).flow_revision == 2
        assert c.executions.list(flow_id="shout").total == 1

        c.flows.create(chain("napper", "nap", 2))
        started = c.executions.create("napper", {"x": 1})
        assert started.status == "pending"
        events = list(c.executions.events(started.execution_id))
        assert events[-1].event == "execution" and events[-1].data["status"] == "completed"
        assert ("a1", "completed") in {(e.data["node_id"], e.data["status"]) for e in events if e.event == "node"}

        running = c.flows.execute("napper", {})
        cancelled = c.executions.cancel(running.execution_id)
        assert cancelled.cancel_requested or cancelled.status == "cancelled"
        assert c.executions.wait(running.execution_id, timeout=10).status == "cancelled"
        assert c.executions.wait(c.flows.execute("napper").execution_id, timeout=0.01).is_terminal is False

        with pytest.raises(portside.NotFoundError):
            c.executions.get("exec_missing")
        c.agents.delete("upper")
        with pytest.raises(portside.NotFoundError):
            c.agents.get("upper")


async def test_async_sdk(live_server: LiveServer, agents: AgentServer) -> None:
    async with portside.AsyncClient(live_server.url, ADMIN_KEY) as c:
        await c.agents.create(id="echo", name="Echo", endpoint=agents.endpoint("echo"))
        await c.flows.upsert(chain("echoes", "echo", 2))
        execution = await c.flows.run("echoes", {"v": 1}, timeout=20)
        assert execution.status == "completed"
        seen = [e async for e in c.executions.events(execution.execution_id)]
        assert seen[-1].data["status"] == "completed"
        page = await c.executions.list(status="completed")
        assert page.items[0].execution_id == execution.execution_id
