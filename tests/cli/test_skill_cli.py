"""``portside skill ...`` against a live server."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from portside.cli.main import app
from tests.conftest import ADMIN_KEY, LiveServer

pytestmark = pytest.mark.bwrap
runner = CliRunner()


def test_help() -> None:
    for args in (["skill", "--help"], ["skill", "evaluate", "--help"], ["mcp", "--help"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, (args, r.output)


def test_skill_commands(live_server: LiveServer) -> None:
    env = {"PORTSIDE_URL": live_server.url, "PORTSIDE_API_KEY": ADMIN_KEY}
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60) as h:
        sbx = h.post("/v1/sandboxes", json={"ttl": 600}).json()["id"]
        exec_id = h.post(f"/v1/sandboxes/{sbx}/python/exec", json={"code": "print('cli')"}).json()["execution_id"]

    def run(*args: str, code: int = 0) -> str:
        r = runner.invoke(app, ["skill", *args], env=env)
        assert r.exit_code == code, r.output
        return r.stdout

    cand = run("create", "cli-skill", "--exec", exec_id).strip()
    assert cand.startswith("cand_")
    assert cand in run("candidates", "--skill-key", "cli-skill")
    listed = json.loads(run("candidates", "--status", "draft", "--json"))
    assert [c["id"] for c in listed["items"]] == [cand]
    assert "has not passed" in runner.invoke(app, ["skill", "promote", cand], env=env).output
    assert "passed" in run("evaluate", cand, "--passed", "--score", "0.9")
    canary = run("promote", cand, "--canary-share", "0.3").strip()
    shown = json.loads(run("releases", "--skill-key", "cli-skill", "--active", "--json"))
    assert [(r["id"], r["canary_share"]) for r in shown["items"]] == [(canary, 0.3)]
    first = run("promote", cand, "--stage", "stable").strip()

    cand2 = run("create", "cli-skill", "-e", exec_id).strip()
    run("evaluate", cand2, "--passed")
    second = run("promote", cand2, "-s", "stable").strip()
    releases = json.loads(run("releases", "--skill-key", "cli-skill", "--active", "--json"))
    assert [r["id"] for r in releases["items"]] == [second]

    back = run("rollback", second).strip()
    assert back.startswith("rel_") and back not in (first, second)
    result = json.loads(run("run", "cli-skill", "--input", "{}"))
    assert result["success"] and result["output"] == "cli\n" and result["release_id"] == back
    health = json.loads(run("health", back))
    assert health["samples"] == 1 and health["healthy"]

    run("evaluate", cand, code=1)  # neither a verdict nor a benchmark
    run("rollback", "rel_missing", code=1)
    run("run", "cli-skill", "--input", "{not json", code=1)
