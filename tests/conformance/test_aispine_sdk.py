"""Conformance: the unmodified ai-spine-sdk 2.3.1 against a live Portside with real local HTTP agents.

ai-spine-sdk 2.3.1 ships only a synchronous client (``ai_spine.AISpine``). Its requirements
document sketches an ``AsyncAISpine`` (POST ``/flows/execute``, poll ``GET /executions/{id}``);
that pattern is exercised here with an async HTTP client, and the sync SDK is also driven
concurrently from asyncio threads.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ai_spine
import httpx
import pytest
from ai_spine.models import Agent, Execution, Flow, HealthStatus, Metrics

from tests.conftest import ADMIN_KEY, LiveServer, make_settings
from tests.flows.agents import AgentServer, fail500, slow

pytestmark = pytest.mark.timeout(60)

FLOW_FILE = """
flow_id: text_pipeline
name: Text pipeline
description: Upper-cases a text, counts its words and echoes both
version: "1.0.0"
entry_point: intake
exit_points: [result]
agents:
  - agent_id: upper
    name: Upper
    description: Upper-cases text
    endpoint: {base}/upper
    capabilities: [text]
    agent_type: processor
  - agent_id: count
    name: Counter
    endpoint: {base}/count
    agent_type: processor
  - agent_id: echo
    name: Echo
    endpoint: {base}/echo
    agent_type: processor
nodes:
  - id: intake
    type: input
  - id: shout
    agent_id: upper
    type: processor
    depends_on: [intake]
    config: {{style: loud}}
  - id: words
    agent_id: count
    type: processor
    depends_on: [intake]
  - id: result
    agent_id: echo
    type: output
    depends_on: [shout, words]
"""


@pytest.fixture(scope="module")
def agents() -> Iterator[AgentServer]:
    server = AgentServer().start()
    server.behaviours["sleepy"] = slow(4)
    server.behaviours["broken"] = fail500
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(agents: AgentServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("aispine")
    (data_dir / "flows").mkdir()
    (data_dir / "flows" / "text_pipeline.yaml").write_text(textwrap.dedent(FLOW_FILE).format(base=agents.url))
    live = LiveServer(make_settings(data_dir)).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[ai_spine.AISpine]:
    with ai_spine.AISpine(api_key=ADMIN_KEY, base_url=server.url, timeout=10, max_retries=0) as c:
        yield c


def _native(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)


def _flow(server: LiveServer, definition: dict[str, Any]) -> None:
    with _native(server) as h:
        r = h.put(f"/v1/flows/{definition['flow_id']}", json=definition)
        assert r.status_code in (200, 201), r.text


def test_system_endpoints(client: ai_spine.AISpine) -> None:
    health = client.health_check()
    assert HealthStatus.from_dict(health).is_healthy
    assert health["checks"]["database"]["ok"] and isinstance(health["uptime_seconds"], int)
    status = client.get_status()
    assert status["status"] == "operational" and status["uptime"] >= 0
    assert status["agents"]["total"] >= 3 and status["flows"]["total"] >= 1
    metrics = client.get_metrics()
    parsed = Metrics.from_dict(metrics)
    assert parsed.flows_total is not None and parsed.flows_total >= 1 and parsed.agents_total is not None
    assert set(metrics["executions_by_status"]) == {"pending", "running", "completed", "failed", "cancelled"}
    assert set(metrics["execution_latency_ms"]) >= {"p50", "p95", "p99"}


def test_flows_from_yaml_and_execution(client: ai_spine.AISpine, agents: AgentServer) -> None:
    flows = client.list_flows()
    assert "text_pipeline" in {f["flow_id"] for f in flows}
    flow = Flow.from_dict(client.get_flow("text_pipeline"))
    assert flow.name == "Text pipeline" and [n["id"] for n in flow.nodes] == ["intake", "shout", "words", "result"]
    assert flow.created_at is not None

    started = client.execute_flow("text_pipeline", {"text": "three little words"}, metadata={"source": "test"})
    assert started["status"] == "pending" and started["execution_id"].startswith("exec_")
    result = client.wait_for_execution(started["execution_id"], timeout=20, interval=1)
    execution = Execution.from_dict(result)
    assert execution.is_successful and execution.completed_at is not None
    echoed = execution.output_data["result"]["echo"]  # type: ignore[index]
    assert echoed["text"] == "THREE LITTLE WORDS" and echoed["words"] == 3
    assert execution.metadata == {"source": "test"}
    nodes = {n["node_id"]: n for n in result["node_results"]}
    assert nodes["shout"]["status"] == "completed" and nodes["shout"]["execution_time_ms"] is not None
    call = next(p for name, p, _ in agents.calls if name == "upper" and p["execution_id"] == execution.execution_id)
    assert call["config"] == {"style": "loud"} and call["node_id"] == "shout"

    again = client.execute_and_wait("text_pipeline", {"text": "a b"}, timeout=20, interval=1)
    assert again["status"] == "completed" and again["output_data"]["result"]["echo"]["words"] == 2


def test_agents_lifecycle(client: ai_spine.AISpine, agents: AgentServer) -> None:
    created = client.create_agent(
        {
            "agent_id": "summarizer",
            "name": "Summarizer",
            "description": "Summarises",
            "endpoint": agents.endpoint("echo"),
            "capabilities": ["summarize"],
            "agent_type": "processor",
        }
    )
    assert Agent.from_dict(created).agent_id == "summarizer"
    readme = client.create_agent(
        {"name": "Data Processor", "type": "processor", "configuration": {"model": "gpt-4", "temperature": 0.7}}
    )
    parsed = Agent.from_dict(readme)
    assert parsed.type == "processor" and parsed.configuration == {"model": "gpt-4", "temperature": 0.7}
    listed = {a["agent_id"]: Agent.from_dict(a) for a in client.list_agents()}
    assert {"summarizer", parsed.agent_id, "upper"} <= set(listed)
    assert client.delete_agent("summarizer") is True
    assert client.delete_agent("summarizer") is False
    assert client.delete_agent(parsed.agent_id) is True


def test_errors_map_to_sdk_exceptions(client: ai_spine.AISpine, server: LiveServer) -> None:
    with ai_spine.AISpine(api_key="sk_not_a_valid_key_123456", base_url=server.url, max_retries=0) as bad:
        with pytest.raises(ai_spine.AuthenticationError):
            bad.list_flows()
    with pytest.raises(ai_spine.APIError) as nf:
        client.get_execution("exec_does_not_exist")
    assert nf.value.status_code == 404
    with pytest.raises(ai_spine.APIError) as nf_flow:
        client.execute_flow("no_such_flow", {"x": 1})
    assert nf_flow.value.status_code == 404 and "no_such_flow" in nf_flow.value.message
    with pytest.raises(ai_spine.ValidationError) as invalid:
        client.create_agent({"name": "x", "endpoint": "ftp://example.com"})
    assert "endpoint" in str(invalid.value)
    with _native(server) as h:
        r = h.post("/flows", json={"flow_id": "cyclic", "nodes": [{"id": "a", "depends_on": ["a"], "type": "noop"}]})
        assert r.status_code == 400 and r.json()["details"]["errors"][0]["code"] == "self_dependency"
        r = h.post("/flows/execute", json={"flow_id": "text_pipeline", "input_data": "not an object"})
        assert r.status_code == 400 and isinstance(r.json()["message"], str)
    with pytest.raises(ai_spine.ValidationError):
        client.execute_flow("", {})  # client-side check


def test_failed_execution_raises_execution_error(
    client: ai_spine.AISpine, server: LiveServer, agents: AgentServer
) -> None:
    with _native(server) as h:
        h.post("/v1/agents", json={"id": "broken", "name": "broken", "endpoint": agents.endpoint("broken")})
    _flow(
        server,
        {
            "flow_id": "doomed",
            "nodes": [
                {"id": "in", "type": "input"},
                {
                    "id": "bad",
                    "agent_id": "broken",
                    "depends_on": ["in"],
                    "retry": {"max_attempts": 2, "backoff_seconds": 0},
                },
            ],
        },
    )
    started = client.execute_flow("doomed", {})
    with pytest.raises(ai_spine.ExecutionError) as err:
        client.wait_for_execution(started["execution_id"], timeout=20, interval=1)
    assert err.value.execution_id == started["execution_id"]
    assert "node 'bad' failed" in err.value.message and "HTTP 500" in err.value.message
    assert err.value.details["status"] == "failed"


def test_wait_timeout_and_cancellation(client: ai_spine.AISpine, server: LiveServer, agents: AgentServer) -> None:
    with _native(server) as h:
        h.post("/v1/agents", json={"id": "sleepy", "name": "sleepy", "endpoint": agents.endpoint("sleepy")})
    _flow(server, {"flow_id": "sleeper", "nodes": [{"id": "z", "agent_id": "sleepy", "timeout_seconds": 10}]})
    started = client.execute_flow("sleeper", {})
    t0 = time.monotonic()
    with pytest.raises(ai_spine.TimeoutError) as timeout:
        client.wait_for_execution(started["execution_id"], timeout=1, interval=1)
    assert timeout.value.timeout == 1 and time.monotonic() - t0 < 3
    cancelled = client.cancel_execution(started["execution_id"])
    assert cancelled["status"] == "cancelled" and cancelled["message"]
    final = client.wait_for_execution(started["execution_id"], timeout=10, interval=1)
    assert final["status"] == "cancelled"
    assert Execution.from_dict(final).is_terminal
    assert final["node_results"][0]["status"] == "cancelled"
    with pytest.raises(ai_spine.APIError) as done:
        client.cancel_execution(
            client.execute_and_wait("text_pipeline", {"text": "x"}, timeout=20, interval=1)["execution_id"]
        )
    assert done.value.status_code == 409


def test_cancel_answers_the_updated_status(client: ai_spine.AISpine, server: LiveServer, agents: AgentServer) -> None:
    """The SDK documents cancel_execution as returning the updated status: it said "running", and a read
    right after still said "running" (the cancellation settled 5-84 ms later)."""
    agents.behaviours["nap"] = slow(4)
    with _native(server) as h:
        h.post("/v1/agents", json={"id": "nap", "name": "nap", "endpoint": agents.endpoint("nap")})
    _flow(server, {"flow_id": "napper", "nodes": [{"id": "n", "agent_id": "nap", "timeout_seconds": 10}]})
    aborted = agents.aborted
    for _ in range(3):
        calls = agents.count("nap")
        started = client.execute_flow("napper", {})
        for _ in range(250):  # until the agent call is under way: the execution is running
            if agents.count("nap") > calls:
                break
            time.sleep(0.02)
        assert client.get_execution(started["execution_id"])["status"] == "running"
        answer = client.cancel_execution(started["execution_id"])
        assert answer["status"] == "cancelled"
        read = client.get_execution(started["execution_id"])
        assert read["status"] == "cancelled" and read["completed_at"]
        final = client.wait_for_execution(started["execution_id"], timeout=10, interval=1)
        assert final["status"] == "cancelled" and final["node_results"][0]["status"] == "cancelled"
    # the work was stopped too: every agent call's connection was dropped by the engine
    for _ in range(500):
        if agents.aborted >= aborted + 3:
            break
        time.sleep(0.02)
    assert agents.aborted >= aborted + 3
    assert client.get_execution(started["execution_id"])["status"] == "cancelled"  # never overwritten


def test_users_and_keys(client: ai_spine.AISpine, server: LiveServer) -> None:
    me = client.get_current_user()
    assert me["id"] == "admin" and client.check_credits() > 0 and me["plan"] == "self-hosted"
    assert client.check_user_api_key("user-123")["has_api_key"] is False
    created = client.generate_user_api_key("user-123")
    assert created["action"] == "created" and created["api_key"].startswith("sk_")
    status = client.check_user_api_key("user-123")
    assert status["has_api_key"] is True and status["api_key"].startswith(created["api_key"][:7])
    with ai_spine.AISpine(api_key=created["api_key"], base_url=server.url, max_retries=0) as user:
        assert user.get_current_user()["id"] == "user-123"
        assert isinstance(user.list_flows(), list)
        with pytest.raises(ai_spine.APIError) as forbidden:
            user.check_user_api_key("someone-else")
        assert forbidden.value.status_code == 403
    again = client.generate_user_api_key("user-123")
    assert again["action"] == "regenerated" and again["api_key"] != created["api_key"]
    with ai_spine.AISpine(api_key=created["api_key"], base_url=server.url, max_retries=0) as old:
        with pytest.raises(ai_spine.AuthenticationError):
            old.list_flows()
    assert client.revoke_user_api_key("user-123")["status"] == "revoked"
    with pytest.raises(ai_spine.APIError) as gone:
        client.revoke_user_api_key("user-123")
    assert gone.value.status_code == 404


def test_rate_limit_sets_retry_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTSIDE_RATE_LIMIT_PER_MINUTE", "30")
    monkeypatch.setenv("PORTSIDE_RATE_LIMIT_BURST", "3")
    live = LiveServer(make_settings(tmp_path / "data")).start()
    try:
        with ai_spine.AISpine(api_key=ADMIN_KEY, base_url=live.url, max_retries=0) as c:
            for _ in range(3):
                c.list_agents()
            with pytest.raises(ai_spine.RateLimitError) as limited:
                c.list_flows()
            assert limited.value.retry_after == 2
            assert c.health_check()["status"] == "healthy"  # /health is not limited
    finally:
        live.stop()


async def test_async_usage(server: LiveServer) -> None:
    """The requirements' AsyncAISpine pattern, plus the sync SDK driven concurrently from asyncio."""

    class AsyncAISpine:
        def __init__(self, base_url: str, api_key: str) -> None:
            self.base_url = base_url
            self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

        async def execute_flow(self, flow_id: str, input_data: dict[str, Any]) -> dict[str, Any]:
            async with httpx.AsyncClient(headers=self.headers) as session:
                response = await session.post(
                    f"{self.base_url}/flows/execute", json={"flow_id": flow_id, "input_data": input_data}
                )
                result: dict[str, Any] = response.json()
                return result

        async def get_execution(self, execution_id: str) -> dict[str, Any]:
            async with httpx.AsyncClient(headers=self.headers) as session:
                result: dict[str, Any] = (await session.get(f"{self.base_url}/executions/{execution_id}")).json()
                return result

        async def wait_for_execution(
            self, execution_id: str, timeout: int = 300, interval: float = 2
        ) -> dict[str, Any]:
            start = asyncio.get_event_loop().time()
            while asyncio.get_event_loop().time() - start < timeout:
                result = await self.get_execution(execution_id)
                if result["status"] in ["completed", "failed"]:
                    return result
                await asyncio.sleep(interval)
            raise ai_spine.TimeoutError(f"Execution {execution_id} timed out")

    client = AsyncAISpine(server.url, ADMIN_KEY)
    started = await asyncio.gather(*(client.execute_flow("text_pipeline", {"text": f"n {i}"}) for i in range(5)))
    results = await asyncio.gather(*(client.wait_for_execution(s["execution_id"], 20, 0.2) for s in started))
    assert [r["output_data"]["result"]["echo"]["words"] for r in results] == [2] * 5

    def run(i: int) -> dict[str, Any]:
        with ai_spine.AISpine(api_key=ADMIN_KEY, base_url=server.url) as sync:
            return sync.execute_and_wait("text_pipeline", {"text": "w " * i}, timeout=20, interval=1)

    outcomes = await asyncio.gather(*(asyncio.to_thread(run, i) for i in range(1, 4)))
    assert [o["output_data"]["result"]["echo"]["words"] for o in outcomes] == [1, 2, 3]
