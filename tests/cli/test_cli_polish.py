"""Issue 21's CLI failures, each reproduced at 80 columns against a live loopback server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import portside
from portside.cli.main import app
from tests.conftest import ADMIN_KEY, LiveServer

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def cli(server: LiveServer, *args: str, **env: str | None) -> Result:
    """Run ``portside ARGS`` at 80 columns (COLUMNS=80, like a default terminal)."""
    full: dict[str, str | None] = {"PORTSIDE_URL": server.url, "PORTSIDE_API_KEY": ADMIN_KEY, "COLUMNS": "80"}
    full.update(env)
    return runner.invoke(app, list(args), env=full)


def widest(text: str) -> int:
    return max((len(line.rstrip()) for line in text.splitlines()), default=0)


def test_keys_list_fits_80_columns_with_whole_ids(live_server: LiveServer) -> None:
    ids = []
    for i in range(3):
        r = cli(live_server, "keys", "create", f"a-rather-long-key-name-number-{i}", "-s", "read", "-s", "write")
        assert r.exit_code == 0, r.output
        ids.append(re.search(r"id (\S+),", r.stderr).group(1))  # type: ignore[union-attr]
    listed = cli(live_server, "keys", "list")
    assert listed.exit_code == 0, listed.output
    assert widest(listed.stdout) <= 80
    for key_id in ids:
        assert key_id in listed.stdout  # whole, so `keys revoke` can take it from here
    for column in ("name", "prefix", "scopes", "owner", "revoked"):
        assert column in listed.stdout
    assert cli(live_server, "keys", "revoke", ids[0]).exit_code == 0


def test_output_json_on_commands(live_server: LiveServer) -> None:
    keys = json.loads(cli(live_server, "keys", "list", "--output", "json").stdout)
    assert any(k["scopes"] for k in keys)
    assert json.loads(cli(live_server, "version", "-o", "json").stdout) == {"version": portside.__version__}
    assert json.loads(cli(live_server, "health", "-o", "json").stdout)["status"] == "ok"
    profiles = json.loads(cli(live_server, "profile", "ls", "-o", "json").stdout)
    assert "python-default" in {p["id"] for p in profiles}
    cargo = json.loads(cli(live_server, "cargo", "create", "-o", "json").stdout)
    assert cargo["id"].startswith("cargo_")
    page = json.loads(cli(live_server, "cargo", "ls", "-o", "json").stdout)
    assert cargo["id"] in {c["id"] for c in page["items"]}
    assert json.loads(cli(live_server, "cargo", "rm", cargo["id"], "-o", "json").stdout) == {"deleted": [cargo["id"]]}
    bad = cli(live_server, "keys", "list", "-o", "yaml")
    assert bad.exit_code == 2 and "table, json" in bad.output
    for args in (["task", "ls"], ["worker", "ls"], ["flow", "list"], ["agent", "list"], ["secret", "ls", "a1"]):
        r = cli(live_server, *args, "-o", "json")
        assert r.exit_code == 0, (args, r.output)
        json.loads(r.stdout)


def test_profile_ls_and_typo_lists_valid_profiles(live_server: LiveServer) -> None:
    listed = cli(live_server, "profile", "ls")
    assert listed.exit_code == 0 and "python-default" in listed.stdout and widest(listed.stdout) <= 80
    typo = cli(live_server, "sandbox", "create", "--profile", "pyhton-default")
    assert typo.exit_code == 1
    assert "unknown profile" in typo.stderr and "valid:" in typo.stderr and "python-default" in typo.stderr


def test_missing_key_says_what_to_set(live_server: LiveServer, tmp_path: Path) -> None:
    r = cli(live_server, "keys", "list", PORTSIDE_API_KEY=None, PORTSIDE_DATA_DIR=str(tmp_path / "none"))
    assert r.exit_code == 1
    assert "set PORTSIDE_API_KEY or pass --api-key" in r.stderr and "Authorization" not in r.stderr


def test_invalid_scope_lists_valid_scopes(live_server: LiveServer) -> None:
    r = cli(live_server, "keys", "create", "bot", "-s", "reed")
    assert r.exit_code == 1 and "reed" in r.stderr
    assert "valid: admin, read, review, secrets, worker, write" in r.stderr


def test_flow_run_malformed_file_is_one_error(live_server: LiveServer, tmp_path: Path) -> None:
    for name, text in (
        ("broken.yaml", "flow_id: x\nnodes:\n  - id: a\n   type: noop\n  bad: [\n"),
        ("broken.json", '{"flow_id": "x", "nodes": ['),
        ("list.yaml", "- just\n- a list\n"),
        ("agents.yaml", "flow_id: x\nagents:\n  - {id: a, name: a, colour: red}\nnodes: [{id: n, agent_id: a}]\n"),
    ):
        path = tmp_path / name
        path.write_text(text)
        r = cli(live_server, "flow", "run", str(path))
        assert r.exit_code in (1, 2), (name, r.output)
        assert "Traceback" not in r.output
        assert r.exception is None or isinstance(r.exception, SystemExit)
        assert len(r.output.splitlines()) < 15, (name, r.output)
        assert name in r.output


def test_task_submit_wait_without_worker_prints_task_id(live_server: LiveServer) -> None:
    r = cli(live_server, "task", "submit", "acme/nobody/serves", "--input", "{}", "--wait", "--timeout", "1")
    assert r.exit_code == 1
    task_id = re.search(r"task (tsk_\w+)", r.stderr)
    assert task_id, r.stderr
    assert "no connected worker serves acme/nobody/serves" in r.stderr
    assert task_id.group(1) in r.stdout  # the task itself, as JSON


class ThreadWorker:
    """A portside.Worker on its own event loop in a thread."""

    def __init__(self, worker: portside.Worker) -> None:
        self.worker = worker
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> portside.Worker:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.worker.start(), self.loop).result(10)
        asyncio.run_coroutine_threadsafe(self.worker.wait_registered(10), self.loop).result(15)
        return self.worker

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.worker.stop(timeout=5), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_task_submit_wait_shows_progress_and_worker_ls(live_server: LiveServer) -> None:
    worker = portside.Worker(live_server.url, ADMIN_KEY, worker_id="cli-progress-worker")

    @worker.handler("acme/cli/progress", concurrency=3)
    async def handle(input: Any, ctx: portside.TaskContext) -> dict[str, Any]:
        await ctx.progress(50, "halfway there")
        await asyncio.sleep(2.5)
        return {"ok": True}

    with ThreadWorker(worker):
        listed = cli(live_server, "worker", "ls")
        assert "cli-progress-worker" in listed.stdout
        assert "acme/cli/progress (concurrency 3)" in " ".join(listed.stdout.split())
        r = cli(live_server, "task", "submit", "acme/cli/progress", "--input", "{}", "--wait")
    assert r.exit_code == 0, r.output
    assert "progress 50% halfway there" in r.stderr
    assert json.loads(r.stdout)["output"] == {"ok": True}


def test_worker_says_it_connected_and_ends_cleanly_on_ctrl_c(live_server: LiveServer, tmp_path: Path) -> None:
    script = tmp_path / "w.py"
    script.write_text(
        "import portside\n"
        "worker = portside.Worker(worker_id='ctrl-c-worker')\n"
        "@worker.handler('acme/cli/noop')\n"
        "async def noop(input, ctx):\n"
        "    return input\n"
        "worker.run_forever()\n"
    )
    env = {
        **os.environ,
        "PORTSIDE_URL": live_server.url,
        "PORTSIDE_API_KEY": ADMIN_KEY,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        first = ""
        while "connected" not in first and time.monotonic() < deadline:
            first += proc.stderr.readline()
        assert "worker ctrl-c-worker connected to" in first and "acme/cli/noop (concurrency 1)" in first
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
    assert "stopped" in rest


@pytest.mark.bwrap
def test_sandbox_ls_exec_history_at_80_columns(live_server: LiveServer) -> None:
    created = cli(live_server, "sandbox", "create", "--ttl", "600")
    assert created.exit_code == 0, created.output
    sid = created.stdout.strip()
    listed = cli(live_server, "sandbox", "ls")
    assert listed.exit_code == 0 and widest(listed.stdout) <= 80
    cargo = json.loads(cli(live_server, "sandbox", "ls", "-o", "json").stdout)["items"][0]["cargo_id"]
    assert sid in listed.stdout and cargo in listed.stdout
    for column in ("status", "profile", "cargo", "created", "expires"):
        assert column in listed.stdout

    ran = cli(live_server, "sandbox", "exec", sid, "--shell", "echo hi")
    assert ran.exit_code == 0 and ran.stdout == "hi\n"
    exec_id = re.search(r"execution (\S+)", ran.stderr)
    assert exec_id, ran.stderr
    history = cli(live_server, "sandbox", "history", sid)
    assert history.exit_code == 0 and exec_id.group(1) in history.stdout and widest(history.stdout) <= 80
    as_json = json.loads(cli(live_server, "sandbox", "history", sid, "-o", "json").stdout)
    assert as_json["entries"][0]["id"] == exec_id.group(1)
    made = cli(live_server, "skill", "create", "cli-history-skill", "--exec", exec_id.group(1))
    assert made.exit_code == 0, made.output

    timed_out = cli(live_server, "sandbox", "exec", sid, "--shell", "sleep 5", "--timeout", "1")
    assert timed_out.exit_code == 1 and "timed out" in timed_out.stderr
    late = re.search(r"execution (\S+) \(see: portside sandbox history", timed_out.stderr)
    assert late and late.group(1) in cli(live_server, "sandbox", "history", sid).stdout
    assert cli(live_server, "sandbox", "rm", sid).exit_code == 0
