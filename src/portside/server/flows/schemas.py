"""Response models of agents, flows and executions (native ``/v1`` and the AI Spine door).

The bodies are built by :mod:`portside.server.flows.serialize`; these models document them. Flows
reuse the SDK's :class:`portside.types.flows.Flow` (plus ``created_by``); agents, executions and node
runs carry an ``id`` key that the SDK exposes as a property, so they are declared here and
``tests/api/test_types_agree.py`` proves they agree with the SDK's types field by field.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from portside.server.api.wire import Deleted, WireModel
from portside.types.flows import Flow, FlowVersion

# ------------------------------------------------------------------ agents


class AgentOut(WireModel):
    """A registered agent (``id`` and ``agent_type`` repeat ``agent_id`` and ``type`` for AI Spine)."""

    agent_id: str
    id: str = Field(description="Same as agent_id.")
    name: str
    description: str = ""
    endpoint: str | None = None
    capability: str | None = None
    capabilities: list[str] = []
    type: str = "processor"
    agent_type: str = Field(default="processor", description="Same as type.")
    backing: str = "none"
    configuration: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    is_active: bool = True
    created_by: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class AgentList(WireModel):
    items: list[AgentOut]
    total: int


class AgentDeleted(AgentOut):
    """The agent as it was, marked deleted."""

    deleted: bool


# ------------------------------------------------------------------ flows


class FlowOut(Flow):
    """A flow at one revision: the definition's own keys (open) plus revision facts."""

    created_by: str | None = None


class FlowList(WireModel):
    items: list[FlowOut]
    total: int


class FlowVersionList(WireModel):
    items: list[FlowVersion]
    total: int


class FlowValidation(WireModel):
    valid: bool
    flow_id: str
    nodes: int = Field(description="Number of nodes.")


class FlowReload(WireModel):
    """What ``POST /v1/flows/reload`` did with each file of the flows directory."""

    directory: str
    loaded: list[str]
    unchanged: list[str]
    errors: list[dict[str, Any]]


class FlowDeleted(Deleted):
    flow_id: str


# ------------------------------------------------------------------ executions


class NodeRunOut(WireModel):
    """The state of one node (or map item ``node[i]``) of an execution."""

    execution_id: str
    node_id: str
    parent_id: str | None = None
    kind: str
    status: str
    attempts: int = 0
    input_data: Any = None
    output_data: Any = None
    error_message: str | None = None
    error: dict[str, Any] | None = None
    attempt_log: list[dict[str, Any]] = []
    external_ref: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    execution_time_ms: float | None = None
    updated_at: str | None = None


class ExecutionOut(WireModel):
    """One run of a flow; ``nodes`` only on single reads (not in lists)."""

    execution_id: str
    id: str = Field(description="Same as execution_id.")
    flow_id: str
    flow_revision: int | None = None
    status: str
    input_data: dict[str, Any] = {}
    output_data: Any = None
    error_message: str | None = None
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] = {}
    cancel_requested: bool = False
    resumes: int = 0
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: float | None = None
    nodes: list[NodeRunOut] = []


class FlowExecutionList(WireModel):
    """A page of flow executions (native `GET /v1/executions`)."""

    items: list[ExecutionOut]
    total: int
    limit: int
    offset: int


# ------------------------------------------------------------------ AI Spine door


class SpineFlowList(WireModel):
    flows: list[FlowOut]
    count: int


class SpineFlowDeleted(WireModel):
    message: str
    status: str


class SpineExecutionStarted(WireModel):
    """ai-spine-sdk's ``ExecutionResponse`` right after ``POST /flows/execute``."""

    execution_id: str
    flow_id: str
    status: str
    created_at: str
    result: dict[str, Any] | None = None
    error: str | None = None
    execution_time: float | None = None


class SpineExecution(ExecutionOut):
    """An execution with its node runs under ``node_results`` (AI Spine's ``ExecutionContextResponse``)."""

    node_results: list[NodeRunOut] = []


class SpineExecutionList(WireModel):
    executions: list[ExecutionOut]
    count: int
    total: int
    limit: int
    offset: int


class SpineExecutionResults(WireModel):
    execution: ExecutionOut
    node_results: list[NodeRunOut]


class SpineExecutionCancelled(ExecutionOut):
    message: str


class SpineAgentList(WireModel):
    agents: list[AgentOut]
    count: int
    authenticated: bool


class SpineAgentDeleted(WireModel):
    message: str
    agent_id: str


class SpineHealth(WireModel):
    """``status`` is ``healthy`` or ``unhealthy``; the other fields only for key holders."""

    status: str
    timestamp: str
    version: str | None = None
    uptime_seconds: int | None = None
    message: str | None = None
    startup_complete: bool | None = None
    checks: dict[str, dict[str, Any]] | None = None


class SpineMetrics(WireModel):
    """Execution counters and latency figures (open: ``ExecutionService.metrics`` keys are included)."""

    timestamp: str
    executions_total: int
    executions_by_status: dict[str, int]
    flows_total: int
    agents_total: int
    agents_active: int
    total_executions: int
    successful_executions: int
    failed_executions: int
    cancelled_executions: int
    running_executions: int
    engine: dict[str, Any] | None = None


class SpineComponents(WireModel):
    registry: str
    orchestrator: str
    memory: str
    communication: str


class SpineStatus(WireModel):
    status: str
    version: str
    uptime: float
    timestamp: str
    components: SpineComponents
    agents: dict[str, int]
    flows: dict[str, int]
    executions: dict[str, int]
    engine: dict[str, Any] | None = None


class SpineUser(WireModel):
    """The caller as an AI Spine user (credits are unlimited)."""

    id: str
    email: str
    name: str
    organization: str | None = None
    credits: int
    credits_unlimited: bool
    plan: str
    rate_limit: int
    key_id: str
    scopes: list[str]


class SpineMyKey(WireModel):
    """Whether the user has a key; only a masked prefix (the other fields only when ``has_api_key``)."""

    has_api_key: bool
    api_key: str | None = None
    message: str | None = None
    key_id: str | None = None
    credits: int | None = None
    rate_limit: int | None = None
    created_at: str | None = None
    last_used_at: str | None = None


class SpineKeyGenerated(WireModel):
    message: str
    api_key: str
    action: str
    key_id: str


class SpineKeyRevoked(WireModel):
    message: str
    status: str
    revoked: int
