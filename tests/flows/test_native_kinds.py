"""Native node kinds on a live server: worker tasks, worker-backed agents, sandbox python nodes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import portside
from tests.conftest import ADMIN_KEY, LiveServer

pytestmark = pytest.mark.timeout(90)


async def test_tasks_agents_on_workers_and_python(live_server: LiveServer) -> None:
    worker = portside.Worker(live_server.url, ADMIN_KEY, worker_id="flow-test-worker")
    cancelled = asyncio.Event()

    @worker.handler("acme/text/shout")
    async def shout(input: dict[str, Any], ctx: portside.TaskContext) -> dict[str, Any]:
        assert ctx.workflow_id and ctx.metadata["node_id"] == "shout"
        return {"text": str(input["text"]).upper() + "!"}

    @worker.handler("acme/text/count")
    async def count(payload: dict[str, Any], ctx: portside.TaskContext) -> dict[str, Any]:
        # a worker-backed agent gets the same payload as an HTTP agent
        return {"output": {"words": len(payload["input"]["text"].split()), "node": payload["node_id"]}}

    @worker.handler("acme/text/stall")
    async def stall(input: Any, ctx: portside.TaskContext) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with worker, portside.AsyncClient(live_server.url, ADMIN_KEY) as c:
        await worker.wait_registered(timeout=10)
        await c.agents.create(id="counter", name="Counter", capability="acme/text/count")
        await c.flows.create(
            {
                "flow_id": "mixed",
                "nodes": [
                    {"id": "in", "type": "input"},
                    {
                        "id": "shout",
                        "type": "task",
                        "capability": "acme/text/shout",
                        "depends_on": ["in"],
                        "input": {"text": "${input.text}"},
                    },
                    {"id": "count", "agent_id": "counter", "depends_on": ["shout"]},
                    {
                        "id": "py",
                        "type": "python",
                        "depends_on": ["count"],
                        "code": "print('hello from the sandbox')\noutput = {'double': input['words'] * 2}",
                    },
                ],
            }
        )
        done = await c.flows.run("mixed", {"text": "sail away"}, timeout=60)
        assert done.status == "completed", (done.error_message, [(n.node_id, n.error_message) for n in done.nodes])
        assert done.node("shout").output_data == {"text": "SAIL AWAY!"}
        assert done.node("count").output_data == {"words": 2, "node": "count"}
        assert done.output_data == {"py": {"double": 4}}
        task = await c.tasks.get(done.node("shout").external_ref or "")
        assert task.status == "succeeded"

        await c.flows.create(
            {"flow_id": "stalled", "nodes": [{"id": "t", "type": "task", "capability": "acme/text/stall"}]}
        )
        started = await c.flows.execute("stalled")
        for _ in range(200):
            node = (await c.executions.get(started.execution_id)).node("t")
            if node.external_ref:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        await c.executions.cancel(started.execution_id)
        final = await c.executions.wait(started.execution_id, timeout=10)
        assert final.status == "cancelled"
        # the cancellation is recorded before the answer; the work stops right after
        for _ in range(200):
            task = await c.tasks.get(node.external_ref or "")
            if task.status == "cancelled":
                break
            await asyncio.sleep(0.05)
        assert task.status == "cancelled"
        await asyncio.wait_for(cancelled.wait(), 10)  # the worker's handler was interrupted

        await c.flows.create(
            {"flow_id": "pysleep", "nodes": [{"id": "p", "type": "python", "code": "import time\ntime.sleep(60)"}]}
        )
        sleeper = await c.flows.execute("pysleep")
        for _ in range(200):
            if (await c.executions.get(sleeper.execution_id)).node("p").external_ref:
                break
            await asyncio.sleep(0.05)
        box = (await c.executions.get(sleeper.execution_id)).node("p").external_ref
        await asyncio.sleep(0.5)
        started_cancel = asyncio.get_running_loop().time()
        await c.executions.cancel(sleeper.execution_id)
        assert (await c.executions.wait(sleeper.execution_id, timeout=15)).status == "cancelled"
        for _ in range(200):  # then the sandbox (and its kernel) goes
            try:
                await c.sandboxes.get(box or "")
            except portside.NotFoundError:
                break
            await asyncio.sleep(0.05)
        assert asyncio.get_running_loop().time() - started_cancel < 10
        with pytest.raises(portside.NotFoundError):
            await c.sandboxes.get(box or "")

        await c.flows.create({"flow_id": "pyfail", "nodes": [{"id": "p", "type": "python", "code": "1/0"}]})
        failed = await c.flows.run("pyfail", timeout=60)
        assert failed.status == "failed" and "ZeroDivisionError" in (failed.error_message or "")
