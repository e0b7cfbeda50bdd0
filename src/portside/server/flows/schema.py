"""The shape of a flow definition: a DAG of nodes, each with its dependencies.

The AI Spine shape (``flow_id``, ``nodes[].id/agent_id/type/depends_on/config``, ``entry_point``,
``exit_points``) is accepted as is; Portside adds native node kinds and per-node retry and timeouts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$"

#: Node kinds. ``input``/``processor``/``output``/``conditional`` come from AI Spine; the rest are native.
NodeKind = Literal[
    "input",
    "processor",
    "output",
    "conditional",
    "agent",
    "noop",
    "task",
    "python",
    "skill",
    "condition",
    "map",
]
NODE_KINDS: tuple[str, ...] = NodeKind.__args__  # type: ignore[attr-defined]
#: Kinds whose work is a call to a registered agent.
AGENT_KINDS = frozenset({"processor", "agent"})
#: Kinds that may optionally call an agent (pass-through otherwise).
OPTIONAL_AGENT_KINDS = frozenset({"input", "output", "conditional"})

TERMINAL_EXECUTION = frozenset({"completed", "failed", "cancelled"})
EXECUTION_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
NODE_STATUSES = ("pending", "running", "completed", "failed", "cancelled", "skipped")
TERMINAL_NODE = frozenset({"completed", "failed", "cancelled", "skipped"})


class RetryPolicy(BaseModel):
    """How often a node is attempted and how long to wait between attempts."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=3, ge=1, le=20)
    backoff_seconds: float = Field(default=0.5, ge=0, le=300)
    backoff_multiplier: float = Field(default=2.0, ge=1, le=10)
    max_backoff_seconds: float = Field(default=30.0, ge=0, le=3600)

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` (1-based) failures."""
        raw = self.backoff_seconds * (self.backoff_multiplier ** max(0, failed_attempts - 1))
        return float(min(self.max_backoff_seconds, raw))


class Defaults(BaseModel):
    """Flow-wide defaults for nodes that do not set their own."""

    model_config = ConfigDict(extra="forbid")

    retry: RetryPolicy | None = None
    timeout_seconds: float | None = Field(default=None, gt=0, le=86_400)


class MapSpec(BaseModel):
    """Fan-out: run ``node`` once per element of the list ``items`` evaluates to."""

    model_config = ConfigDict(extra="forbid")

    items: str = Field(min_length=1, max_length=2000, description="Expression giving the list to map over.")
    node: InnerNode
    concurrency: int = Field(default=4, ge=1, le=256)
    max_items: int = Field(default=1000, ge=1, le=10_000)


class _NodeFields(BaseModel):
    """Fields shared by top-level nodes and the inner node of a ``map``."""

    model_config = ConfigDict(extra="forbid")

    type: NodeKind = "processor"
    agent_id: str | None = Field(default=None, max_length=100)
    config: dict[str, Any] = Field(default_factory=dict)
    conditions: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    description: str = Field(default="", max_length=2000)
    input: dict[str, Any] | None = Field(
        default=None, description="Template of the node's input; '${expr}' strings are evaluated."
    )
    retry: RetryPolicy | None = None
    timeout_seconds: float | None = Field(default=None, gt=0, le=86_400)
    capability: str | None = Field(default=None, max_length=200, description="task: the worker capability.")
    code: str | None = Field(default=None, max_length=200_000, description="python: the code to run.")
    skill: str | None = Field(default=None, max_length=300, description="skill: the skill key, or 'key@stage'.")
    expression: str | None = Field(default=None, max_length=2000, description="condition: a boolean expression.")


class InnerNode(_NodeFields):
    """The per-item node of a ``map`` (no id or dependencies of its own)."""


class NodeSpec(_NodeFields):
    """One node of a flow."""

    id: str = Field(pattern=ID_PATTERN)
    depends_on: list[str] = Field(default_factory=list, max_length=500)
    when: str | None = Field(default=None, max_length=2000, description="Run only when this expression is true.")
    map: MapSpec | None = None

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_dependency(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class FlowDefinition(BaseModel):
    """A flow as saved: a DAG of nodes."""

    model_config = ConfigDict(extra="forbid")

    flow_id: str = Field(pattern=ID_PATTERN)
    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=5000)
    version: str = Field(default="1.0.0", max_length=50)
    nodes: list[NodeSpec] = Field(min_length=1, max_length=500)
    entry_point: str | None = None
    exit_points: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    defaults: Defaults | None = None
    max_parallel: int = Field(default=16, ge=1, le=256)
    timeout_seconds: float | None = Field(default=None, gt=0, le=7 * 86_400)

    def node(self, node_id: str) -> NodeSpec:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def sinks(self) -> list[str]:
        """Nodes nothing depends on."""
        used = {d for n in self.nodes for d in n.depends_on}
        return [n.id for n in self.nodes if n.id not in used]

    def outputs(self) -> list[str]:
        """The nodes whose outputs make the execution's output: ``exit_points`` or the sinks."""
        return list(self.exit_points) or self.sinks()


MapSpec.model_rebuild()

DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)
DEFAULT_TIMEOUT_SECONDS = 30.0
#: Kinds whose default policy retries (remote calls); local kinds run once.
RETRYING_KINDS = frozenset({"processor", "agent", "input", "output", "conditional", "skill"})
#: Kinds that wait on longer work (worker tasks, sandboxes, skills) get a longer default timeout.
LONG_KINDS = frozenset({"task", "python", "skill"})
LONG_TIMEOUT_SECONDS = 300.0


def retry_policy(flow: FlowDefinition, node: _NodeFields) -> RetryPolicy:
    """The node's own policy, else the flow default, else the kind's default."""
    if node.retry is not None:
        return node.retry
    if flow.defaults and flow.defaults.retry is not None:
        return flow.defaults.retry
    return DEFAULT_RETRY if node.type in RETRYING_KINDS else NO_RETRY


def node_timeout(flow: FlowDefinition, node: _NodeFields) -> float:
    if node.timeout_seconds is not None:
        return node.timeout_seconds
    if flow.defaults and flow.defaults.timeout_seconds is not None:
        return flow.defaults.timeout_seconds
    return LONG_TIMEOUT_SECONDS if node.type in LONG_KINDS else DEFAULT_TIMEOUT_SECONDS
