"""The MCP hub against real MCP servers: a tiny stdio server (``tiny_server.py``, official ``mcp`` package) and
Portside's own ``/mcp`` over streamable HTTP. Driven through the SDK, raw HTTP and the CLI.

One live server (SQLite) for the module; tests run in order and share the registered servers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from typer.testing import CliRunner

from portside import Client
from portside.cli.main import app as cli
from portside.errors import APIError
from tests.conftest import ADMIN_KEY, LiveServer, free_port, make_settings

pytestmark = pytest.mark.timeout(90)
TINY = str(Path(__file__).with_name("tiny_server.py"))
runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = LiveServer(make_settings(tmp_path_factory.mktemp("hub") / "data")).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[Client]:
    with Client(base_url=server.url, api_key=ADMIN_KEY, timeout=60) as c:
        yield c


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_register_connect_list_and_call(client: Client, server: LiveServer) -> None:
    added = client.mcp.add("tiny", command=[sys.executable, TINY], env={"GREETING": "ahoy"}, connect=True)
    assert added.status == "connected" and added.transport == "stdio"
    assert added.pid and psutil.pid_exists(added.pid)
    assert added.env_keys == ["GREETING"] and "ahoy" not in str(added.model_dump())
    assert added.tools_count == 3 and added.resources_count == 1
    assert added.server_info and added.server_info["name"] == "tiny"

    tools = {t.name: t for t in client.mcp.tools("tiny")}
    assert set(tools) == {"add", "whoami", "fail"}
    assert tools["add"].input_schema["required"] == ["a", "b"] and tools["add"].description == "Add two integers."
    assert {t.name for t in client.mcp.tools()} >= set(tools)  # all servers
    resources = client.mcp.resources("tiny")
    assert [(r.uri, r.mime_type) for r in resources] == [("memo://greeting", "text/plain")]
    read = client.mcp.read_resource("tiny", "memo://greeting")
    assert read["contents"][0]["text"] == "ahoy"

    result = client.mcp.call("tiny", "add", {"a": 20, "b": 22})
    assert not result.is_error and result.structured_content == {"result": 42} and result.text == "42"
    who = client.mcp.call("tiny", "whoami")
    assert who.structured_content == {"pid": added.pid, "greeting": "ahoy"}  # env reached the process
    failed = client.mcp.call("tiny", "fail", {"message": "boom"})
    assert failed.is_error and "boom" in failed.text

    with pytest.raises(APIError) as missing:
        client.mcp.call("tiny", "nope")
    assert missing.value.status_code == 404 and missing.value.code == "mcp_tool_not_found"

    calls = client.mcp.calls("tiny")  # one audit row per call, newest first
    assert [(c.tool, c.outcome) for c in calls] == [("fail", "tool_error"), ("whoami", "ok"), ("add", "ok")]
    assert calls[2].arguments == {"a": 20, "b": 22} and calls[2].result_preview == "42"
    assert calls[2].key_id and calls[2].owner == "admin" and calls[2].request_id

    # the Symbiont shapes of the same state
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        info = http.get("/api/v1/mcp/servers/tiny").json()
        assert info["status"] == "connected" and info["pid"] == added.pid and info["tools_count"] == 3
        sym_tools = http.get("/api/v1/mcp/tools", params={"server": "tiny"}).json()
        assert {t["name"] for t in sym_tools} == {"add", "whoami", "fail"}
        assert all("schema" in t and t["server_name"] == "tiny" for t in sym_tools)


def test_crash_shows_disconnected_and_reconnect_works(client: Client) -> None:
    pid = client.mcp.get("tiny").pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: client.mcp.get("tiny").status == "disconnected")
    crashed = client.mcp.get("tiny")
    assert crashed.pid is None and crashed.tools_count == 0
    assert crashed.last_error and f"pid {pid}" in crashed.last_error and "exited" in crashed.last_error
    assert client.mcp.tools("tiny") == []  # a disconnected server lists nothing
    with pytest.raises(APIError) as down:
        client.mcp.call("tiny", "add", {"a": 1, "b": 1})
    assert down.value.status_code == 409 and down.value.code == "mcp_server_not_connected"
    assert "exited" in str(down.value)
    assert client.mcp.calls("tiny")[0].tool == "fail"  # refused calls never reached the server: no audit row

    again = client.mcp.connect("tiny")
    assert again.status == "connected" and again.pid not in (None, pid) and again.last_error is None
    assert client.mcp.call("tiny", "add", {"a": 2, "b": 3}).structured_content == {"result": 5}

    gone = client.mcp.disconnect("tiny")
    assert gone.status == "disconnected" and gone.desired_state == "disconnected"
    wait_for(lambda: not psutil.pid_exists(again.pid or 0))  # the stdio process is stopped


def test_bad_command_reports_its_error(client: Client) -> None:
    client.mcp.add(
        "broken", command=[sys.executable, "-c", "import sys; sys.exit('no such server')"], timeout_seconds=10
    )
    with pytest.raises(APIError) as failed:
        client.mcp.connect("broken")
    assert failed.value.status_code == 502 and failed.value.code == "mcp_connect_failed"
    state = client.mcp.get("broken")
    assert state.status == "error" and state.last_error and "no such server" in state.last_error
    client.mcp.add("missing", command="/nonexistent/mcp-server")
    with pytest.raises(APIError):
        client.mcp.connect("missing")
    assert "No such file" in (client.mcp.get("missing").last_error or "")
    with pytest.raises(APIError) as dup:
        client.mcp.add("missing", command="x")
    assert dup.value.status_code == 409


def test_streamable_http_server_with_secret_headers(client: Client, server: LiveServer) -> None:
    """Portside's own ``/mcp`` endpoint is a streamable HTTP MCP server that needs a Bearer header."""
    self_url = f"{server.url}/mcp"
    no_auth = client.mcp.add("self-noauth", url=self_url, timeout_seconds=10)
    assert no_auth.transport == "streamable_http"
    with pytest.raises(APIError):
        client.mcp.connect("self-noauth")
    added = client.mcp.add("self", url=self_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, connect=True)
    assert added.status == "connected" and added.pid is None and added.header_keys == ["Authorization"]
    assert ADMIN_KEY not in str(added.model_dump())
    names = {t.name for t in client.mcp.tools("self")}
    assert {"execute_python", "list_skill_candidates"} <= names
    listing = client.mcp.call("self", "list_skill_candidates", {})
    assert not listing.is_error
    updated = client.mcp.update("self", description="Portside itself", timeout_seconds=20)
    assert updated.status == "connected" and updated.timeout_seconds == 20 and updated.description == "Portside itself"
    client.mcp.delete("self")
    with pytest.raises(APIError) as gone:
        client.mcp.get("self")
    assert gone.value.status_code == 404


def test_scopes(client: Client, server: LiveServer) -> None:
    key = client.keys.create(name="reader", scopes=["read"]).key
    with Client(base_url=server.url, api_key=key) as reader:
        assert {s.name for s in reader.mcp.list()} >= {"tiny"}
        with pytest.raises(APIError) as denied:
            reader.mcp.add("evil", command="/bin/sh")
        assert denied.value.status_code == 403
        with pytest.raises(APIError) as denied:
            reader.mcp.connect("tiny")
        assert denied.value.status_code == 403


def test_cli_add_ls_tools_call(server: LiveServer, client: Client) -> None:
    env = {"PORTSIDE_URL": server.url, "PORTSIDE_API_KEY": ADMIN_KEY, "COLUMNS": "250"}
    added = runner.invoke(
        cli, ["mcp-server", "add", "cli-tiny", "-e", "GREETING=cli", "--", sys.executable, TINY], env=env
    )
    assert added.exit_code == 0, added.output
    assert "connected" in added.output
    listed = runner.invoke(cli, ["mcp-server", "ls"], env=env)
    assert listed.exit_code == 0 and "cli-tiny" in listed.stdout and "connected" in listed.stdout
    tools = runner.invoke(cli, ["mcp-server", "tools", "cli-tiny"], env=env)
    assert tools.exit_code == 0 and "whoami" in tools.stdout
    called = runner.invoke(cli, ["mcp-server", "call", "cli-tiny", "add", '{"a": 1, "b": 2}'], env=env)
    assert called.exit_code == 0, called.output
    assert called.stdout.strip() == '{"result": 3}'
    failed = runner.invoke(cli, ["mcp-server", "call", "cli-tiny", "fail", '{"message": "nope"}'], env=env)
    assert failed.exit_code == 2 and "nope" in failed.stdout
    bad = runner.invoke(cli, ["mcp-server", "call", "cli-tiny", "add", "not json"], env=env)
    assert bad.exit_code == 1
    removed = runner.invoke(cli, ["mcp-server", "rm", "cli-tiny"], env=env)
    assert removed.exit_code == 0
    assert "cli-tiny" not in {s.name for s in client.mcp.list()}


def test_connected_servers_come_back_after_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    first = LiveServer(settings).start()
    try:
        with Client(base_url=first.url, api_key=ADMIN_KEY) as c:
            old_pid = c.mcp.add("tiny", command=[sys.executable, TINY], connect=True).pid
            c.mcp.add("idle", command=[sys.executable, TINY])
    finally:
        first.stop()
    assert old_pid is not None and not psutil.pid_exists(old_pid)  # stopping the server stops its stdio servers
    second = LiveServer(settings).start()
    try:
        with Client(base_url=second.url, api_key=ADMIN_KEY) as c:
            wait_for(lambda: c.mcp.get("tiny").status == "connected", timeout=20)
            assert c.mcp.get("idle").status == "disconnected"  # only servers that were connected come back
            assert c.mcp.call("tiny", "add", {"a": 1, "b": 1}).structured_content == {"result": 2}
    finally:
        second.stop()


def test_sse_server(client: Client) -> None:
    """The tiny server over the older SSE transport; killing it shows the server as disconnected."""
    port = free_port()
    code = f"import sys; sys.path.insert(0, {str(Path(TINY).parent)!r}); from tiny_server import server; "
    code += f"server.run('sse', port={port})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "SSE server did not start"
                time.sleep(0.1)
        added = client.mcp.add("tiny-sse", url=f"http://127.0.0.1:{port}/sse", transport="sse", connect=True)
        assert added.transport == "sse" and added.status == "connected" and added.tools_count == 3
        assert client.mcp.call("tiny-sse", "add", {"a": 4, "b": 5}).structured_content == {"result": 9}
        proc.kill()
        wait_for(lambda: client.mcp.get("tiny-sse").status == "disconnected")
        assert "closed the stream" in (client.mcp.get("tiny-sse").last_error or "")
    finally:
        proc.kill()
        proc.wait()
