"""Response models of Symbiont-style agents and their deployments (``/v1/symbiont-agents``,
``/v1/agent-deployments`` and the Symbiont door's ``/api/v1/agents...``).

The SDK's :mod:`portside.types.agent_deployments` models plus the wire-only keys, declared as subclasses.
"""

from __future__ import annotations

from typing import Any

from portside.server.api.wire import Deleted, WireModel
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
