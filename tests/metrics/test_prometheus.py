"""``/metrics/prometheus`` as real consumers read it: ``promtool check metrics`` and ``prometheus_client``'s parser.

Regression tests for issue 21: every family used to be a gauge, there were no HTTP counts or latency
histograms, deleted sandboxes were counted as live, ``portside_host_cpu_count`` broke promtool's
naming rule, and tool calls to Portside's own MCP server were not counted.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator

import httpx
import httpx2
import pytest
from fastapi import FastAPI
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.conftest import ADMIN_KEY, LiveServer, make_settings

pytestmark = pytest.mark.timeout(120)


def families(text: str) -> dict[str, tuple[str, list[Sample]]]:
    return {f.name: (f.type, list(f.samples)) for f in text_string_to_metric_families(text)}


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def scrape(api: httpx.AsyncClient) -> str:
    response = await api.get("/metrics/prometheus")
    assert response.status_code == 200, response.text
    return response.text


@pytest.fixture
async def sqlite_api(tmp_path: object, sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    from pathlib import Path

    from portside.server.app import create_app

    assert isinstance(tmp_path, Path)
    app: FastAPI = create_app(make_settings(tmp_path / "data", sqlite_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://portside", headers=headers) as client:
            yield client


async def test_promtool_accepts_the_exposition_and_types_are_real(api: httpx.AsyncClient) -> None:
    await api.get("/v1/sandboxes/sbx_doesnotexist")
    await api.post("/v1/flows", json={"flow_id": "p", "nodes": [{"id": "a", "type": "noop"}]})
    text = await scrape(api)

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus'); CI installs it")
    checked = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr


async def test_families_parse_with_their_types(api: httpx.AsyncClient) -> None:
    await api.get("/v1/sandboxes/sbx_doesnotexist")
    text = await scrape(api)
    fams = families(text)
    assert fams["portside_http_requests"][0] == "counter"
    assert fams["portside_http_request_duration_seconds"][0] == "histogram"
    assert fams["portside_sandbox_exec_duration_seconds"][0] == "histogram"
    assert fams["portside_task_dispatch_latency_seconds"][0] == "histogram"
    assert fams["portside_flow_node_duration_seconds"][0] == "histogram"
    assert fams["portside_mcp_server_tool_calls"][0] == "counter"
    assert fams["portside_sandboxes"][0] == "gauge" and fams["portside_tasks"][0] == "gauge"
    assert fams["portside_retention_runs"][0] == "counter"
    assert fams["portside_retention_purged_rows"][0] == "counter"
    assert fams["portside_retention_last_run_timestamp_seconds"][0] == "gauge"
    assert "portside_host_cpu_count" not in text and fams["portside_host_cpus"][1][0].value >= 1
    # HTTP series are labelled by route template, never by the raw path (one series per id otherwise)
    routes = {s.labels["route"] for s in fams["portside_http_requests"][1]}
    assert "/v1/sandboxes/{sandbox_id}" in routes
    assert not any("sbx_doesnotexist" in r for r in routes)
    assert value(text, "portside_http_requests_total", route="/v1/sandboxes/{sandbox_id}", status="404") >= 1
    assert value(text, "portside_http_request_duration_seconds_count", route="/v1/sandboxes/{sandbox_id}") >= 1
    unmatched = await api.get("/no/such/route/xyz")
    assert unmatched.status_code == 404
    after = await scrape(api)
    assert not any("/no/such" in s.labels.get("route", "") for s in families(after)["portside_http_requests"][1])


@pytest.mark.bwrap
async def test_deleted_sandboxes_are_not_live_and_execs_are_timed(sqlite_api: httpx.AsyncClient) -> None:
    api = sqlite_api
    before = await scrape(api)
    ids = []
    for _ in range(3):
        created = await api.post("/v1/sandboxes", json={"profile": "shell-minimal"})
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    ran = await api.post(f"/v1/sandboxes/{ids[0]}/shell/exec", json={"command": "echo hi"})
    assert ran.status_code == 200 and ran.json()["success"], ran.text
    for sid in ids[1:]:
        assert (await api.delete(f"/v1/sandboxes/{sid}")).status_code in (200, 204)

    text = await scrape(api)
    assert value(text, "portside_sandboxes") == 1  # was 3: the deleted ones counted by status
    native = (await api.get("/v1/metrics")).json()
    assert sum(native["counts"]["sandboxes"].values()) == 1
    symbiont = (await api.get("/api/v1/metrics")).json()
    assert sum(symbiont["sandboxes"].values()) == 1

    labels = {"driver": "bwrap", "profile": "shell-minimal"}
    created_n = value(text, "portside_sandbox_creates_total", outcome="ok", **labels)
    assert created_n - value(before, "portside_sandbox_creates_total", outcome="ok", **labels) == 3
    assert value(text, "portside_sandbox_create_duration_seconds_count", **labels) >= 3
    execs = value(text, "portside_sandbox_execs_total", kind="shell", outcome="ok", **labels)
    assert execs - value(before, "portside_sandbox_execs_total", kind="shell", outcome="ok", **labels) == 1
    assert value(text, "portside_sandbox_exec_duration_seconds_count", kind="shell", **labels) >= 1
    await api.delete(f"/v1/sandboxes/{ids[0]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = LiveServer(make_settings(tmp_path_factory.mktemp("prom") / "data")).start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_calls_to_portsides_own_mcp_server_are_counted(server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as rest:
        before = (await rest.get("/metrics/prometheus")).text
        async with httpx2.AsyncClient(headers=headers, timeout=60) as hc:
            async with Client(streamable_http_client(f"{server.url}/mcp", http_client=hc)) as client:
                result = await client.call_tool("list_skill_candidates", {})
                assert not result.is_error
                bad = await client.call_tool("no_such_tool", {})
                assert bad.is_error
        after = (await rest.get("/metrics/prometheus")).text
    name = "portside_mcp_server_tool_calls_total"
    ok = {"tool": "list_skill_candidates", "outcome": "ok"}
    assert value(after, name, **ok) - value(before, name, **ok) == 1
    assert value(after, name, outcome="error") - value(before, name, outcome="error") == 1
    assert value(after, "portside_mcp_server_tool_call_duration_seconds_count", tool="list_skill_candidates") >= 1
