"""Metrics: native JSON, Symbiont ``SystemMetrics`` and the Prometheus text format agree (SQLite and PostgreSQL)."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.timeout(60)
SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.]+(?:e[+-]?[0-9]+)?)$'
)
SYMBIONT_INTS = (
    "uptime_seconds",
    "memory_usage_bytes",
    "disk_usage_bytes",
    "active_agents",
    "total_agents",
    "secrets_count",
    "mcp_connections",
    "vector_db_items",
)
SYMBIONT_FLOATS = ("memory_usage_percent", "cpu_usage_percent", "disk_usage_percent")


def parse(text: str) -> tuple[dict[str, float], set[str], set[str]]:
    """(sample line without value -> value, names with HELP, names with TYPE); fails on malformed lines."""
    samples: dict[str, float] = {}
    helps: set[str] = set()
    types: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            assert line.split()[3] in ("gauge", "counter", "histogram"), line
            types.add(line.split()[2])
        else:
            match = SAMPLE.match(line)
            assert match, f"malformed sample line: {line!r}"
            samples[line.rsplit(" ", 1)[0]] = float(match.group(4))
    return samples, helps, types


async def test_metrics_json_symbiont_and_prometheus(api: httpx.AsyncClient) -> None:
    await api.post("/v1/flows", json={"flow_id": "m", "nodes": [{"id": "a", "type": "noop"}]})
    started = await api.post("/flows/execute", json={"flow_id": "m", "input_data": {}})
    assert started.status_code in (200, 201, 202), started.text
    await api.post("/v1/inputs", json={"flow_id": "m"})

    native = (await api.get("/v1/metrics")).json()
    assert native["host"]["memory_total_bytes"] > native["host"]["memory_used_bytes"] > 0
    assert native["process"]["rss_bytes"] > 0 and native["uptime_seconds"] >= 0
    counts = native["counts"]
    assert counts["flows"]["total"] == 1 and counts["http_inputs"] == {"running": 1}
    assert sum(counts["flow_executions"].values()) == 1
    assert {"sandboxes", "tasks", "workers", "agent_deployments", "secrets", "mcp_servers"} <= set(counts)

    system = (await api.get("/api/v1/metrics")).json()
    for key in SYMBIONT_INTS:
        assert isinstance(system[key], int), key
    for key in SYMBIONT_FLOATS:
        assert isinstance(system[key], float | int) and 0 <= system[key] <= 100, key
    assert system["mcp_connections"] == 0 and sum(system["executions"].values()) == 1

    assert (await api.get("/metrics/prometheus", headers={"Authorization": ""})).status_code == 401
    prom = await api.get("/metrics/prometheus")
    assert prom.status_code == 200 and prom.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples, helps, types = parse(prom.text)
    base = re.compile(r"_(total|bucket|sum|count)$")
    names = {base.sub("", key.split("{")[0]) for key in samples}
    assert names <= {base.sub("", n) for n in helps} and names <= {base.sub("", n) for n in types}
    assert samples["portside_flows"] == 1 and samples['portside_http_inputs{status="running"}'] == 1
    assert sum(v for k, v in samples.items() if k.startswith("portside_flow_executions{")) == 1
    assert samples["portside_host_memory_total_bytes"] == native["host"]["memory_total_bytes"]
    assert samples[f'portside_info{{version="{native_version(prom.text)}"}}'] == 1
    assert samples["portside_mcp_connections"] == 0 and samples["portside_agents"] == system["total_agents"]


def native_version(text: str) -> str:
    match = re.search(r'portside_info\{version="([^"]+)"\}', text)
    assert match
    return match.group(1)
