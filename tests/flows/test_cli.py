"""``portside flow run FILE --input JSON --wait`` and friends against a live server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from portside.cli.main import app
from tests.conftest import ADMIN_KEY, LiveServer
from tests.flows.agents import AgentServer

pytestmark = pytest.mark.timeout(60)
runner = CliRunner()

FLOW = """
flow_id: cli_text
name: CLI text
agents:
  - id: upper
    name: Upper
    endpoint: {base}/upper
  - id: count
    name: Count
    endpoint: {base}/count
nodes:
  - id: in
    type: input
  - id: up
    agent_id: upper
    depends_on: [in]
  - id: n
    agent_id: count
    depends_on: [up]
"""


def test_flow_run_wait(live_server: LiveServer, agents: AgentServer, tmp_path: Path) -> None:
    env = {"PORTSIDE_URL": live_server.url, "PORTSIDE_API_KEY": ADMIN_KEY}
    file = tmp_path / "cli_text.yaml"
    file.write_text(FLOW.format(base=agents.url))
    r = runner.invoke(app, ["flow", "run", str(file), "--input", '{"text": "a b c"}', "--wait"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"n": {"words": 3}}
    assert "up" in r.stderr and "completed" in r.stderr  # progress lines, one per node change

    started = runner.invoke(app, ["flow", "run", "cli_text", "--input", '{"text": "x"}'], env=env)
    assert started.exit_code == 0 and started.stdout.strip().startswith("exec_")
    status = runner.invoke(app, ["flow", "status", started.stdout.strip(), "--follow"], env=env)
    assert status.exit_code == 0 and "completed" in status.stdout

    assert "cli_text" in runner.invoke(app, ["flow", "list"], env=env).stdout
    assert "upper" in runner.invoke(app, ["agent", "list"], env=env).stdout
    assert "cli_text" in runner.invoke(app, ["flow", "executions", "--flow", "cli_text"], env=env).stdout
    again = runner.invoke(app, ["flow", "push", str(file)], env=env)
    assert again.exit_code == 0 and "unchanged" in again.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "flow_id: bad\nnodes:\n  - id: a\n    agent_id: ghost\n  - id: b\n    depends_on: [zzz]\n    type: noop\n"
    )
    r = runner.invoke(app, ["flow", "validate", str(bad)], env=env)
    assert r.exit_code == 1 and "ghost" in r.stderr and "zzz" in r.stderr

    failing = tmp_path / "failing.yaml"
    failing.write_text(
        f"flow_id: failing\nagents:\n  - {{id: broken, name: b, endpoint: '{agents.url}/missing'}}\n"
        "nodes:\n  - {id: x, agent_id: broken, retry: {max_attempts: 1}}\n"
    )
    r = runner.invoke(app, ["flow", "run", str(failing), "--wait"], env=env)
    assert r.exit_code == 1 and "HTTP 404" in r.stderr
