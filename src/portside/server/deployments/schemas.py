"""Response models of Symbiont-style agents and their deployments (``/v1/symbiont-agents``,
``/v1/agent-deployments`` and the Symbiont door's ``/api/v1/agents...``).

The SDK's :mod:`portside.types.agent_deployments` models plus the wire-only keys, declared as subclasses.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from portside.server.api.wire import Deleted, WireModel
from portside.server.deployments.agents import AGENT_ID
from portside.types.agent_deployments import (
    AgentMetrics,
    AgentStatus,
    CompileResult,
    Deployment,
    DeploymentTask,
    SymbiontAgent,
)

__all__ = [
    "AgentMetricsOut",
    "AgentStatusOut",
    "CompileResult",
    "DeploymentList",
    "DeploymentLog",
    "DeploymentOut",
    "DeploymentTaskOut",
    "SymbiontAgentDeleted",
    "SymbiontAgentList",
    "SymbiontAgentOut",
    "TaskQueued",
]


class SymbiontAgentOut(SymbiontAgent):
    """An agent; ``definition`` and ``dsl_source`` only on single reads."""

    owner: str
    created_at: str
    updated_at: str
    dsl_source: str | None = None


class SymbiontAgentList(WireModel):
    items: list[SymbiontAgentOut]
    total: int


class SymbiontAgentDeleted(Deleted):
    id: str


class DeploymentOut(Deployment):
    """Symbiont's ``AgentDeployResponse`` plus sandbox, process and usage facts."""

    config_overrides: dict[str, Any] = {}
    created_at: str
    sandbox: dict[str, Any] | None = None


class DeploymentList(WireModel):
    items: list[DeploymentOut]
    total: int


class DeploymentLog(WireModel):
    deployment_id: str
    log: str


class TaskQueued(WireModel):
    task_id: str
    deployment_id: str
    status: str


DeploymentTaskOut = DeploymentTask


class AgentStatusOut(AgentStatus):
    sandboxes: list[dict[str, Any]] = []


class AgentMetricsOut(AgentMetrics):
    deployments_total: int
    deployments_running: int


class AgentFields(BaseModel):
    """A Symbiont agent definition as both doors accept it (the native door generates a missing ``id``)."""

    model_config = ConfigDict(extra="ignore")

    # The service's rules (deployments.agents, its own messages), stated for the document.
    id: str | None = Field(default=None, json_schema_extra={"pattern": AGENT_ID.pattern})
    name: str = Field(json_schema_extra={"minLength": 1, "maxLength": 300, "pattern": r"\S"})
    description: str = Field(default="", json_schema_extra={"maxLength": 10_000})
    system_prompt: str = Field(default="", json_schema_extra={"maxLength": 100_000})
    tools: list[str] = Field(
        default_factory=list, json_schema_extra={"maxItems": 500, "items": {"type": "string", "minLength": 1}}
    )
    model: str = Field(default="", json_schema_extra={"maxLength": 200})
    temperature: float = Field(default=0.0, json_schema_extra={"minimum": 0, "maximum": 2})
    top_p: float = Field(default=1.0, json_schema_extra={"minimum": 0, "maximum": 1})
    max_tokens: int = Field(default=0, json_schema_extra={"minimum": 0, "maximum": 10_000_000})
