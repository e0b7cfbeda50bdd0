"""``portside gc`` and ``client.admin.gc()`` against a live server."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from portside import Client
from portside.cli.main import app
from tests.conftest import ADMIN_KEY, LiveServer

runner = CliRunner()


def test_gc_command_and_sdk(live_server: LiveServer) -> None:
    env = {"PORTSIDE_URL": live_server.url, "PORTSIDE_API_KEY": ADMIN_KEY}
    r = runner.invoke(app, ["gc"], env=env)
    assert r.exit_code == 0, r.output
    assert "execution_output" in r.output and "store" in r.output
    r = runner.invoke(app, ["gc", "--output", "json"], env=env)
    assert r.exit_code == 0, r.output
    body = json.loads(r.output)
    assert set(body["purged"]) >= {"execution_output", "finished_tasks", "deleted_records", "idempotency_records"}
    with Client(base_url=live_server.url, api_key=ADMIN_KEY) as c:
        report = c.admin.gc()
    assert not report.skipped and report.store.bytes_after is not None
