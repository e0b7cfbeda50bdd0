"""Durability: kill -9 a real server mid-execution, restart it, and the execution resumes and finishes.

Completed nodes are not run again (their agents see exactly one call) and no node is recorded as
succeeded twice; the node that was running when the process died is attempted again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, free_port
from tests.flows.agents import AgentServer, running_agents, slow
from tests.reliability.server_process import server_process

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def agents() -> Iterator[AgentServer]:
    with running_agents() as server:
        server.behaviours["step"] = slow(0.4, {"stepped": True})
        yield server


def _api(port: int) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=15
    )


def _node_status(h: httpx.Client, exec_id: str) -> dict[str, dict[str, Any]]:
    return {n["node_id"]: n for n in h.get(f"/v1/executions/{exec_id}").json()["nodes"]}


def test_kill_9_and_resume(db_url: str, tmp_path: Path, agents: AgentServer) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "server.log"
    port = free_port()
    steps = [f"s{i}" for i in range(6)]
    flow = {
        "flow_id": "durable",
        "nodes": [{"id": "s0", "agent_id": "step"}]
        + [{"id": steps[i], "agent_id": "step", "depends_on": [steps[i - 1]]} for i in range(1, 6)],
    }
    with server_process(data_dir, port, log, db_url=db_url, graceful=False) as proc, _api(port) as h:
        assert h.post("/v1/agents", json={"id": "step", "name": "step", "endpoint": agents.endpoint("step")}).is_success
        assert h.put("/v1/flows/durable", json=flow).is_success
        exec_id = h.post("/v1/flows/durable/executions", json={"input": {"n": 1}}).json()["execution_id"]
        deadline = time.monotonic() + 20
        while _node_status(h, exec_id)["s2"]["status"] != "running":
            assert time.monotonic() < deadline, "execution did not progress"
            time.sleep(0.05)
        time.sleep(0.1)
        proc.kill()  # SIGKILL: no shutdown hook runs, the lease stays held by a dead process
        proc.wait()
    done_before = set(steps[:2])
    with server_process(data_dir, port, log, db_url=db_url, graceful=False), _api(port) as h:
        final = h.get(f"/v1/executions/{exec_id}/wait", params={"timeout": 30}).json()
        assert final["status"] == "completed", final
        assert final["resumes"] == 1
        nodes = {n["node_id"]: n for n in final["nodes"]}
        assert all(n["status"] == "completed" for n in nodes.values())
        for node_id in done_before:
            assert agents.count("step", node_id) == 1, f"{node_id} ran again after the restart"
            assert nodes[node_id]["attempts"] == 1
        assert agents.count("step", "s2") == 2  # interrupted mid-call: attempted again
        assert nodes["s2"]["attempts"] == 2 and nodes["s2"]["attempt_log"][0]["code"] == "interrupted"
        for node_id in steps[3:]:
            assert agents.count("step", node_id) == 1
        assert final["output_data"] == {"s5": {"stepped": True}}
