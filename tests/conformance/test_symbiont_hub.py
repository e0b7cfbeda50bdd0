"""The unmodified upstream ``symbiont`` SDK (symbiont-sdk 0.3.0) drives a live Portside through the README examples
of the hub areas: system health, workflow execution, MCP management, enhanced monitoring; plus every HTTP input
server method (the README has no example for them) and the error types these areas raise.

One server per module (SQLite). The README's MCP example runs ``npx @modelcontextprotocol/server-filesystem``, which
needs the npm registry; here the same config runs a tiny stdio server written with the official ``mcp`` package.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from symbiont import (
    Agent,
    APIError,
    AuthenticationError,
    Client,
    HumanReviewDecision,
    McpConnectionStatus,
    McpServerConfig,
    NotFoundError,
    ReviewSessionCreate,
    SigningRequest,
    Tool,
    ToolProvider,
    ToolSchema,
    WorkflowExecutionRequest,
)
from symbiont.models import (
    AgentRoutingRule,
    HttpInputConfig,
    HttpInputCreateRequest,
    HttpInputServerInfo,
    HttpInputUpdateRequest,
    HttpResponseControlConfig,
    RouteMatchType,
    WebhookTriggerRequest,
    WebhookTriggerResponse,
)

from tests.conftest import ADMIN_KEY, LiveServer, make_settings

pytestmark = pytest.mark.timeout(90)
TINY = str(Path(__file__).resolve().parents[1] / "mcp_hub" / "tiny_server.py")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(make_settings(tmp_path_factory.mktemp("symbiont-hub") / "data")).start()
    try:
        with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
            for flow_id in ("data-analysis-workflow", "webhook-flow"):
                r = http.post("/v1/flows", json={"flow_id": flow_id, "nodes": [{"id": "result", "type": "noop"}]})
                assert r.status_code == 201, r.text
        yield live
    finally:
        live.stop()


@pytest.fixture
def client(server: LiveServer) -> Client:
    return Client(api_key=ADMIN_KEY, base_url=f"{server.url}/api/v1")


# ---------------------------------------------------------------- Quick Start


def test_readme_client_from_environment_and_health_check(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMBIONT_API_KEY", ADMIN_KEY)
    monkeypatch.setenv("SYMBIONT_BASE_URL", f"{server.url}/api/v1")
    client = Client()

    # System Health Check
    health = client.health_check()
    assert health.status == "healthy" and health.version
    assert isinstance(health.uptime_seconds, int) and health.uptime_seconds >= 0
    assert health.timestamp.tzinfo is not None
    print(f"Status: {health.status}")
    print(f"Uptime: {health.uptime_seconds} seconds")
    print(f"Version: {health.version}")
    # health needs no key (the SDK sends none without one)
    monkeypatch.delenv("SYMBIONT_API_KEY")
    assert Client(base_url=f"{server.url}/api/v1").health_check().status == "healthy"


# ---------------------------------------------------------------- Workflow Execution


def test_readme_workflow_execution(client: Client) -> None:
    workflow_request = WorkflowExecutionRequest(
        workflow_id="data-analysis-workflow",
        parameters={"input_data": "path/to/data.csv", "analysis_type": "statistical"},
        agent_id="agent-123",
    )
    result = client.execute_workflow(workflow_request)
    print(f"Workflow result: {result}")
    assert result["status"] == "completed" and result["execution_id"].startswith("exec_")
    assert result["result"] == {"result": {"input_data": "path/to/data.csv", "analysis_type": "statistical"}}
    assert result["agent_id"] == "agent-123" and result["started_at"].endswith("Z")

    # it is a flow execution on the engine, visible on the native API
    execution = httpx.get(
        f"{client.base_url.replace('/api/v1', '')}/v1/executions/{result['execution_id']}",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()
    assert execution["flow_id"] == "data-analysis-workflow" and execution["metadata"]["agent_id"] == "agent-123"

    # a dict works too, and an inline flow definition is saved and run
    inline = {
        "flow_id": "inline-wf",
        "nodes": [{"id": "a", "type": "noop"}, {"id": "b", "type": "noop", "depends_on": ["a"]}],
    }
    ran = client.execute_workflow({"workflow_id": json.dumps(inline), "parameters": {"n": 1}})
    assert ran["status"] == "completed" and ran["workflow_id"] == "inline-wf" and ran["result"] == {"b": {"n": 1}}

    with pytest.raises(NotFoundError):
        client.execute_workflow(WorkflowExecutionRequest(workflow_id="no-such-workflow", parameters={}))


# ---------------------------------------------------------------- MCP Management


def test_readme_mcp_management(client: Client) -> None:
    # Add MCP server (README config, with a server that runs offline)
    mcp_config = McpServerConfig(
        name="filesystem-server",
        command=[sys.executable, TINY],
        env={"NODE_ENV": "production"},
        timeout_seconds=30,
    )
    added = client.add_mcp_server(mcp_config)
    assert added["server_name"] == "filesystem-server" and added["status"] == "disconnected"

    # Connect to server
    connected = client.connect_mcp_server("filesystem-server")
    assert connected["status"] == "connected" and connected["pid"]

    # List available tools and resources
    tools = client.list_mcp_tools("filesystem-server")
    resources = client.list_mcp_resources("filesystem-server")
    print(f"Available tools: {[tool.name for tool in tools]}")
    print(f"Available resources: {[resource.uri for resource in resources]}")
    assert {tool.name for tool in tools} == {"add", "whoami", "fail"}
    add = next(t for t in tools if t.name == "add")
    assert add.server_name == "filesystem-server" and add.tool_schema["required"] == ["a", "b"]
    assert add.verified is False
    assert [(r.uri, r.server_name) for r in resources] == [("memo://greeting", "filesystem-server")]
    assert {t.name for t in client.list_mcp_tools()} >= {"add"}  # every server
    assert len(client.list_mcp_resources()) >= 1

    # Get connection status
    connection_info = client.get_mcp_server("filesystem-server")
    print(f"Status: {connection_info.status}")
    print(f"Tools count: {connection_info.tools_count}")
    assert connection_info.status == McpConnectionStatus.CONNECTED
    assert connection_info.tools_count == 3 and connection_info.resources_count == 1
    assert connection_info.pid == connected["pid"] and connection_info.connected_at is not None

    listed = client.list_mcp_servers()
    assert [s.server_name for s in listed] == ["filesystem-server"]

    disconnected = client.disconnect_mcp_server("filesystem-server")
    assert disconnected["status"] == "disconnected"
    assert client.get_mcp_server("filesystem-server").status == McpConnectionStatus.DISCONNECTED
    assert client.list_mcp_tools("filesystem-server") == []

    with pytest.raises(NotFoundError):
        client.get_mcp_server("no-such-server")
    with pytest.raises(APIError) as dup:
        client.add_mcp_server(mcp_config)
    assert dup.value.status_code == 409
    broken = McpServerConfig(name="broken", command=[sys.executable, "-c", "raise SystemExit('bad server')"])
    client.add_mcp_server(broken)
    with pytest.raises(APIError) as failed:
        client.connect_mcp_server("broken")
    assert failed.value.status_code == 502
    info = client.get_mcp_server("broken")
    assert info.status == McpConnectionStatus.ERROR and "bad server" in (info.last_error or "")


def test_mcp_tools_signed_through_tool_review_show_verified(client: Client) -> None:
    """A tool whose definition went through review and signing is listed ``verified`` with its hash."""
    client.add_mcp_server(McpServerConfig(name="reviewed", command=[sys.executable, TINY]))
    client.connect_mcp_server("reviewed")
    add = next(t for t in client.list_mcp_tools("reviewed") if t.name == "add")
    schema = add.tool_schema
    tool = Tool(
        name="add",
        description=add.description,
        schema=ToolSchema(type=schema["type"], properties=schema["properties"], required=schema["required"]),
        provider=ToolProvider(name="tiny"),
    )
    review = client.submit_tool_for_review(ReviewSessionCreate(tool=tool, submitted_by="dev@example.com"))
    deadline = time.monotonic() + 30
    while client.get_review_session(review.review_id).status in ("submitted", "pending_analysis", "analyzing"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.submit_human_review_decision(
        review.review_id, HumanReviewDecision(decision="approve", reviewer_id="reviewer@example.com")
    )
    client.sign_approved_tool(SigningRequest(review_id=review.review_id, signing_key_id="default"))
    verified = {t.name: t for t in client.list_mcp_tools("reviewed")}
    assert verified["add"].verified is True and (verified["add"].verification_hash or "").startswith("sha256:")
    assert verified["whoami"].verified is False and verified["whoami"].verification_hash is None
    client.disconnect_mcp_server("reviewed")


# ---------------------------------------------------------------- Enhanced Monitoring


def test_readme_enhanced_monitoring(client: Client) -> None:
    client.create_agent(
        Agent(
            id="agent-123",
            name="My Assistant",
            description="A helpful AI assistant",
            system_prompt="You are a helpful assistant.",
            tools=["web_search", "calculator"],
            model="gpt-4",
            temperature=0.7,
            top_p=0.9,
            max_tokens=1000,
        )
    )
    client.add_mcp_server(McpServerConfig(name="metrics-probe", command=[sys.executable, TINY]))
    client.connect_mcp_server("metrics-probe")

    # Get comprehensive system metrics
    system_metrics = client.get_metrics()
    print(f"Memory usage: {system_metrics.memory_usage_percent}%")
    print(f"CPU usage: {system_metrics.cpu_usage_percent}%")
    print(f"Active agents: {system_metrics.active_agents}")
    print(f"Vector DB items: {system_metrics.vector_db_items}")
    print(f"MCP connections: {system_metrics.mcp_connections}")
    assert 0 < system_metrics.memory_usage_percent <= 100 and system_metrics.memory_usage_bytes > 0
    assert 0 <= system_metrics.cpu_usage_percent <= 100
    assert 0 < system_metrics.disk_usage_percent <= 100 and system_metrics.disk_usage_bytes > 0
    assert system_metrics.total_agents >= 1 and system_metrics.active_agents >= 0
    assert system_metrics.mcp_connections == 1 and system_metrics.vector_db_items >= 0
    assert system_metrics.secrets_count >= 0 and system_metrics.uptime_seconds >= 0

    # Get agent-specific metrics
    agent_metrics = client.get_agent_metrics("agent-123")
    print(f"Tasks completed: {agent_metrics.tasks_completed}")
    print(f"Average response time: {agent_metrics.average_response_time_ms}ms")
    print(f"Agent uptime: {agent_metrics.uptime_seconds}s")
    assert agent_metrics.agent_id == "agent-123" and agent_metrics.tasks_completed == 0
    with pytest.raises(NotFoundError):
        client.get_agent_metrics("no-such-agent")
    client.disconnect_mcp_server("metrics-probe")

    # The same figures for Prometheus
    prom = httpx.get(
        client.base_url.replace("/api/v1", "/metrics/prometheus"), headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert prom.status_code == 200 and prom.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "portside_mcp_servers " in prom.text and "portside_agents " in prom.text


# ---------------------------------------------------------------- HTTP input servers (every SDK method)


def test_http_input_servers(client: Client, server: LiveServer) -> None:
    config = HttpInputConfig(
        agent_id="flow:webhook-flow",
        path="/github",
        auth_header="Bearer hook-secret",
        routing_rules=[
            AgentRoutingRule(
                condition_type=RouteMatchType.JSON_FIELD_EQUALS,
                condition_value="data-analysis",
                condition_target="route",
                agent_id="flow:data-analysis-workflow",
            )
        ],
        response_control=HttpResponseControlConfig(default_status=200, error_status=502),
        forward_headers=["X-Event"],
    )
    created = client.create_http_input_server(HttpInputCreateRequest(config=config))
    assert isinstance(created, HttpInputServerInfo) and created.status == "running"
    server_id = created.server_id
    assert created.config.agent_id == "flow:webhook-flow" and created.config.auth_header == "********"
    assert created.config.routing_rules and created.config.routing_rules[0].agent_id == "flow:data-analysis-workflow"

    assert [s.server_id for s in client.list_http_input_servers()] == [server_id]
    assert client.get_http_input_server(server_id).config.path == "/github"

    # Manual trigger (authenticated, so no auth header needed)
    triggered = client.trigger_webhook(
        WebhookTriggerRequest(server_id=server_id, payload={"a": 1}, headers={"X-Event": "push"})
    )
    assert isinstance(triggered, WebhookTriggerResponse)
    assert triggered.status == "completed" and triggered.response_code == 200
    assert triggered.agent_id == "flow:webhook-flow"
    assert triggered.response_body["output"]["result"]["body"] == {"a": 1}
    assert triggered.response_body["output"]["result"]["headers"] == {"x-event": "push"}
    routed = client.trigger_webhook(WebhookTriggerRequest(server_id=server_id, payload={"route": "data-analysis"}))
    assert routed.agent_id == "flow:data-analysis-workflow" and routed.status == "completed"

    # The public webhook: the auth header (or a signature, for inputs with a secret) is required
    hook = f"{server.url}/hooks/{server_id}"
    assert httpx.post(hook, json={"b": 2}).status_code == 401
    public = httpx.post(hook, json={"b": 2}, headers={"Authorization": "Bearer hook-secret"})
    assert public.status_code == 200 and public.json()["output"]["result"]["body"] == {"b": 2}

    metrics = client.get_http_input_metrics(server_id)
    assert metrics["requests_processed"] == 3 and metrics["rejected"] == {"unauthorized": 1}

    # Update: the masked auth header sent back keeps the stored one; an HMAC secret can be added
    info = client.get_http_input_server(server_id)
    info.config.max_body_bytes = 1024
    updated = client.update_http_input_server(HttpInputUpdateRequest(server_id=server_id, config=info.config))
    assert updated.config.max_body_bytes == 1024 and updated.config.auth_header == "********"
    assert httpx.post(hook, json={}, headers={"Authorization": "Bearer hook-secret"}).status_code == 200
    assert httpx.post(hook, content=b"x" * 2000, headers={"Authorization": "Bearer hook-secret"}).status_code == 413
    raw = httpx.put(
        f"{server.url}/api/v1/http-input/servers/{server_id}",
        json={"server_id": server_id, "config": {**info.config.dict(), "auth_header": None, "secret": "s3cret-s3cret"}},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert raw.status_code == 200 and raw.json()["config"]["auth_header"] is None
    body = b'{"signed": true}'
    signature = "sha256=" + hmac.new(b"s3cret-s3cret", body, hashlib.sha256).hexdigest()
    assert httpx.post(hook, content=body, headers={"X-Signature-256": signature}).status_code == 200
    assert httpx.post(hook, content=body, headers={"X-Signature-256": "sha256=00"}).status_code == 401

    # Stop / start / delete
    assert client.stop_http_input_server(server_id)["status"] == "stopped"
    assert client.get_http_input_server(server_id).status == "stopped"
    assert httpx.post(hook, content=body, headers={"X-Signature-256": signature}).status_code == 503
    with pytest.raises(APIError) as stopped:
        client.trigger_webhook(WebhookTriggerRequest(server_id=server_id, payload={}))
    assert stopped.value.status_code == 503
    assert client.start_http_input_server(server_id)["status"] == "running"
    assert client.delete_http_input_server(server_id)["deleted"] is True
    with pytest.raises(NotFoundError):
        client.get_http_input_server(server_id)
    with pytest.raises(NotFoundError):
        client.get_http_input_metrics(server_id)

    # A target that fails answers with the configured error status
    failing = client.create_http_input_server(HttpInputCreateRequest(config=HttpInputConfig(agent_id="flow:missing")))
    result = client.trigger_webhook(WebhookTriggerRequest(server_id=failing.server_id, payload={}))
    assert result.status == "failed" and result.response_code == 500
    assert result.response_body["error"]["code"] == "flow_not_found"


# ---------------------------------------------------------------- Error Handling


def test_error_handling(server: LiveServer) -> None:
    with pytest.raises(AuthenticationError):
        Client(api_key="sk_wrong_key_0123456789", base_url=f"{server.url}/api/v1").get_metrics()
    with pytest.raises(AuthenticationError):
        Client(base_url=f"{server.url}/api/v1").list_mcp_servers()  # no key at all
    client = Client(api_key=ADMIN_KEY, base_url=f"{server.url}/api/v1")
    for call in (
        lambda: client.connect_mcp_server("nope"),
        lambda: client.get_http_input_server("inp_nope"),
        lambda: client.trigger_webhook(WebhookTriggerRequest(server_id="inp_nope", payload={})),
    ):
        with pytest.raises(NotFoundError) as exc:
            call()
        assert exc.value.status_code == 404
    with pytest.raises(APIError) as bad:
        client.create_http_input_server({"config": {"agent_id": "flow:x", "max_body_bytes": -1}})
    assert bad.value.status_code == 400
