"""Durability: kill -9 a real server mid-execution, restart it, and the execution resumes and finishes.

Completed nodes are not run again (their agents see exactly one call) and no node is recorded as
succeeded twice; the node that was running when the process died is attempted again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, free_port
from tests.flows.agents import AgentServer, running_agents, slow

pytestmark = pytest.mark.timeout(90)


@contextmanager
def portside_process(data_dir: Path, db_url: str, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "PORTSIDE_DATA_DIR": str(data_dir),
        "PORTSIDE_DATABASE_URL": db_url,
        "PORTSIDE_PORT": str(port),
        "PORTSIDE_API_KEY": ADMIN_KEY,
        "PORTSIDE_SANDBOX_WARM_POOL": "0",
        "PORTSIDE_LOG_LEVEL": "WARNING",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "portside.cli.main", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 40
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:  # the data dir is thrown away: no need for a graceful stop
            proc.kill()
            proc.wait()


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
    with portside_process(data_dir, db_url, port, log) as proc, _api(port) as h:
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
    with portside_process(data_dir, db_url, port, log), _api(port) as h:
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
