"""The MCP server through the official ``mcp`` client: over ``/mcp`` (streamable HTTP) and over stdio.

One live server (SQLite, bubblewrap sandboxes) is shared by the module; it runs with a small
session-sandbox cache (2) and a small output limit (500 chars) so eviction and truncation show.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from portside.server.mcp_server.area import MCPRuntime
from tests.conftest import ADMIN_KEY, LiveServer, make_settings

pytestmark = pytest.mark.bwrap

CACHE_SIZE = 2
MAX_OUTPUT = 500
TRUNCATED = re.compile(r"\n\.\.\.\[truncated (\d+) chars\]")
EXPECTED_TOOLS = {
    "execute_python",
    "execute_shell",
    "read_file",
    "write_file",
    "list_files",
    "get_execution_history",
    "get_execution",
    "annotate_execution",
    "create_skill_candidate",
    "evaluate_skill_candidate",
    "promote_skill_candidate",
    "list_skill_candidates",
    "list_skill_releases",
    "rollback_skill_release",
    "run_skill",
    "get_release_health",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PORTSIDE_MCP_SANDBOX_CACHE_SIZE", str(CACHE_SIZE))
        mp.setenv("PORTSIDE_MCP_MAX_OUTPUT_CHARS", str(MAX_OUTPUT))
        srv = LiveServer(make_settings(tmp_path_factory.mktemp("mcp") / "data")).start()
    try:
        yield srv
    finally:
        srv.stop()


@asynccontextmanager
async def http_client(server: LiveServer, *, key: str = ADMIN_KEY, mode: str = "auto") -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as hc:
        async with Client(streamable_http_client(f"{server.url}/mcp", http_client=hc), mode=mode) as client:
            yield client


def rest(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)


def text(result: CallToolResult) -> str:
    block = result.content[0]
    assert block.type == "text"
    return str(block.text)


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    data: dict[str, Any] = json.loads(text(result))
    return data


async def failed(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, text(result)
    return text(result)


# ---------------------------------------------------------------- streamable HTTP


async def test_http_tools_and_skill_lifecycle(server: LiveServer) -> None:
    async with http_client(server, mode="legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names >= EXPECTED_TOOLS
        schema = next(t for t in (await client.list_tools()).tools if t.name == "execute_python").input_schema
        assert schema["required"] == ["code"]

        # the session sandbox is created on first use and reused (Python state persists)
        first = await ok(client, "execute_python", code="x = 21\nprint('hi')", tags="etl,load")
        sid = first["sandbox_id"]
        second = await ok(client, "execute_python", code="print(x * 2)", description="double")
        assert second["sandbox_id"] == sid and second["output"] == "42\n" and second["success"]
        shell = await ok(client, "execute_shell", command="echo step > out.txt && cat out.txt", tags="etl")
        assert (shell["sandbox_id"], shell["exit_code"], shell["output"]) == (sid, 0, "step\n")

        # files
        await ok(client, "write_file", path="data/a.txt", content="hello")
        assert (await ok(client, "read_file", path="data/a.txt"))["content"] == "hello"
        listed = await ok(client, "list_files", path="data")
        assert [e["name"] for e in listed["entries"]] == ["a.txt"]
        assert "file_not_found" in await failed(client, "read_file", path="data/missing.txt")

        # history and annotations
        etl = await ok(client, "get_execution_history", tags="etl")
        assert {e["id"] for e in etl["entries"]} == {first["execution_id"], shell["execution_id"]}
        await ok(client, "annotate_execution", execution_id=first["execution_id"], notes="sets x")
        got = await ok(client, "get_execution", execution_id=first["execution_id"])
        assert (got["notes"], got["tags"]) == ("sets x", "etl,load")
        assert (await ok(client, "get_last_execution", exec_type="python"))["id"] == second["execution_id"]

        # skill lifecycle: candidate → evaluation → canary → stable → rollback
        evidence = [first["execution_id"], second["execution_id"]]
        cand = await ok(client, "create_skill_candidate", skill_key="mcp-double", source_execution_ids=evidence)
        assert cand["status"] == "draft" and cand["source_execution_ids"] == evidence
        assert "has not passed" in await failed(client, "promote_skill_candidate", candidate_id=cand["id"])
        pending = await ok(client, "list_skill_candidates", skill_key="mcp-double", status="pending")
        assert [c["id"] for c in pending["items"]] == [cand["id"]]
        ev = await ok(client, "evaluate_skill_candidate", candidate_id=cand["id"], passed=True, score=0.9)
        assert ev["passed"] is True
        canary = await ok(
            client, "promote_skill_candidate", candidate_id=cand["id"], stage="canary", canary_share=0.25
        )
        assert canary["canary_share"] == 0.25
        stable1 = await ok(client, "promote_skill_candidate", candidate_id=cand["id"], stage="stable")
        cand2 = await ok(client, "create_skill_candidate", skill_key="mcp-double", source_execution_ids=evidence[1:])
        await ok(client, "evaluate_skill_candidate", candidate_id=cand2["id"], passed=True)
        stable2 = await ok(client, "promote_skill_candidate", candidate_id=cand2["id"], stage="stable")
        active = await ok(client, "list_skill_releases", skill_key="mcp-double", active_only=True)
        assert [r["id"] for r in active["items"]] == [stable2["id"]]  # one active release per skill
        back = await ok(client, "rollback_skill_release", release_id=stable2["id"])
        assert (back["rollback_of"], back["candidate_id"], back["version"]) == (stable2["id"], cand["id"], 4)
        assert stable1["version"] == 2
        statuses = await ok(client, "list_skill_candidates", skill_key="mcp-double")
        assert {c["id"]: c["status"] for c in statuses["items"]}[cand2["id"]] == "rolled_back"

        run = await ok(client, "run_skill", skill_key="mcp-double", stage="stable")
        assert run["success"] and run["output"] == "42\n" and run["release_id"] == back["id"]
        health = await ok(client, "get_release_health", release_id=back["id"])
        assert health["samples"] == 1 and health["healthy"] is True


async def test_http_validation_errors_and_truncation(server: LiveServer) -> None:
    async with http_client(server) as client:
        assert await failed(client, "execute_python") == "Validation Error: missing required parameter 'code'"
        msg = await failed(client, "execute_shell", command="true", timeout=0, bogus=1)
        assert msg.startswith("Validation Error: ")
        assert "'timeout'" in msg and "unknown parameter 'bogus'" in msg
        msg = await failed(client, "create_skill_candidate", skill_key="k")
        assert msg == "Validation Error: missing required parameter 'source_execution_ids'"
        assert "Validation Error" in await failed(client, "promote_skill_candidate", candidate_id="c", stage="prod")
        assert "unknown_tool" in await failed(client, "no_such_tool")
        missing = await failed(client, "create_skill_candidate", skill_key="k", source_execution_ids="exec_nope")
        assert missing.startswith("Error (validation_error): execution(s) not found: exec_nope")

        big = await ok(client, "execute_python", code="print('x' * 5000)")
        found = TRUNCATED.search(big["output"])
        assert found and int(found.group(1)) == 5001 - MAX_OUTPUT
        assert big["output"].startswith("x" * MAX_OUTPUT + "\n...[truncated")


async def test_http_auth_and_scopes(server: LiveServer) -> None:
    async with httpx.AsyncClient() as raw:
        anonymous = await raw.post(f"{server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["www-authenticate"]
    assert anonymous.json()["error"]["code"] == "unauthorized"
    with rest(server) as r:
        reader = r.post("/v1/keys", json={"name": "mcp-reader", "scopes": ["read"], "owner": "reader"}).json()["key"]
    async with http_client(server, key=reader) as client:
        assert "Error (forbidden)" in await failed(client, "execute_python", code="print(1)")
        assert (await ok(client, "list_skill_releases"))["total"] >= 0
        # another owner's sandbox is invisible
        assert "not_found" in await failed(client, "list_files", sandbox_id="sbx_not_mine")


async def test_http_session_sandboxes_are_lru_bounded(server: LiveServer) -> None:
    runtime: MCPRuntime = server.app.state.ctx.services["mcp_server"]
    assert runtime.cache.max_size == CACHE_SIZE
    sandboxes: list[str] = []
    async with http_client(server, mode="legacy") as s1, http_client(server, mode="legacy") as s2:
        sandboxes.append((await ok(s1, "execute_python", code="v = 1"))["sandbox_id"])
        sandboxes.append((await ok(s2, "execute_python", code="v = 2"))["sandbox_id"])
        assert sandboxes[0] != sandboxes[1]
        await ok(s1, "execute_python", code="v")  # s1 is now the most recently used
        async with http_client(server, mode="legacy") as s3:
            sandboxes.append((await ok(s3, "execute_python", code="v = 3"))["sandbox_id"])
        # s2's sandbox was the least recently used: evicted and deleted
        assert sandboxes[1] in runtime.cache.evicted
        with rest(server) as r:
            assert r.get(f"/v1/sandboxes/{sandboxes[1]}").status_code == 404
            assert r.get(f"/v1/sandboxes/{sandboxes[0]}").status_code == 200
        assert (await ok(s1, "execute_python", code="print(v)"))["output"] == "1\n"
        # the evicted session gets a fresh sandbox on its next call
        again = await ok(s2, "execute_python", code="print('fresh')")
        assert again["sandbox_id"] not in sandboxes and again["output"] == "fresh\n"


# ---------------------------------------------------------------- stdio


async def test_stdio_thin_client(server: LiveServer, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "portside.cli.main", "mcp"],
        env={
            "PORTSIDE_URL": server.url,
            "PORTSIDE_API_KEY": ADMIN_KEY,
            "PORTSIDE_MCP_MAX_OUTPUT_CHARS": "300",
        },
        cwd=str(tmp_path),
    )
    async with Client(params) as client:
        assert {t.name for t in (await client.list_tools()).tools} >= EXPECTED_TOOLS
        first = await ok(client, "execute_python", code="import os\nn = 7\nprint(os.getcwd())")
        sid = first["sandbox_id"]
        again = await ok(client, "execute_python", code="print(n * 6)")
        assert (again["sandbox_id"], again["output"]) == (sid, "42\n")
        assert await failed(client, "read_file") == "Validation Error: missing required parameter 'path'"
        big = await ok(client, "execute_shell", command="head -c 1000 /dev/zero | tr '\\0' y")
        assert big["output"] == "y" * 300 + "\n...[truncated 700 chars]"
        cand = await ok(
            client, "create_skill_candidate", skill_key="stdio-skill", source_execution_ids=[first["execution_id"]]
        )
        assert cand["status"] == "draft"
        assert "Error (not_found)" in await failed(client, "rollback_skill_release", release_id="rel_missing")
        with rest(server) as r:
            assert r.get(f"/v1/sandboxes/{sid}").status_code == 200
    # the stdio session ended: its sandbox was released
    with rest(server) as r:
        assert r.get(f"/v1/sandboxes/{sid}").status_code == 404
