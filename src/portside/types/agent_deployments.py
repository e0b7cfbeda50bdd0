"""Symbiont-style agent and deployment models."""

from __future__ import annotations

from typing import Any

from portside.types.common import Model


class SymbiontAgent(Model):
    id: str
    name: str
    description: str = ""
    system_prompt: str = ""
    tools: list[str] = []
    model: str = ""
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 0
    origin: str = "api"
    version: int = 1
    definition: dict[str, Any] | None = None


class CompileResult(Model):
    """DSL compilation: ``errors`` read ``line L, column C: message``; ``diagnostics`` are structured."""

    success: bool
    agent_id: str | None = None
    errors: list[str] = []
    warnings: list[str] = []
    compiled_at: str
    diagnostics: list[dict[str, Any]] = []
    agent: dict[str, Any] | None = None


class Deployment(Model):
    deployment_id: str
    agent_id: str
    status: str
    deployed_at: str
    endpoint_url: str | None = None
    environment: str = "development"
    sandbox_id: str | None = None
    pid: int | None = None
    stopped_at: str | None = None
    last_error: str | None = None
    usage: dict[str, Any] = {}


class ResourceUsage(Model):
    memory_bytes: int
    cpu_percent: float
    active_tasks: int


class AgentStatus(Model):
    agent_id: str
    state: str
    last_activity: str
    resource_usage: ResourceUsage
    uptime_seconds: int = 0
    deployments: list[str] = []


class AgentMetrics(Model):
    agent_id: str
    tasks_completed: int
    tasks_failed: int
    average_response_time_ms: float
    memory_usage_bytes: int
    cpu_usage_percent: float
    last_activity: str
    uptime_seconds: int


class DeploymentTask(Model):
    task_id: str
    status: str
    action: str | None = None
    output: Any = None
    error: str | None = None
    duration_ms: float | None = None
