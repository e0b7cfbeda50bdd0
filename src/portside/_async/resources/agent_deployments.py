"""``client.agent_deployments``: Symbiont-style agents (SDK ``Agent`` model or DSL) run in sandboxes."""

from __future__ import annotations

import builtins
from typing import Any

from portside._async._http import AsyncHTTP
from portside.types.agent_deployments import (
    AgentMetrics,
    AgentStatus,
    CompileResult,
    Deployment,
    DeploymentTask,
    SymbiontAgent,
)


class AsyncAgentDeployments:
    """Define agents, compile DSL, deploy them as long-lived sandboxed processes, send them tasks."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def create_agent(self, **agent: Any) -> SymbiontAgent:
        """Create or update an agent: ``id``, ``name``, ``description``, ``system_prompt``, ``tools``, ..."""
        return SymbiontAgent.model_validate(await self._http.json("POST", "/v1/symbiont-agents", json=agent))

    async def compile(
        self, dsl_content: str, *, agent_name: str | None = None, validate_only: bool = False
    ) -> CompileResult:
        """Compile Symbiont DSL; on success the agent is stored (unless ``validate_only``)."""
        body = {"dsl_content": dsl_content, "agent_name": agent_name, "validate_only": validate_only}
        return CompileResult.model_validate(await self._http.json("POST", "/v1/symbiont-agents/compile", json=body))

    async def list_agents(self) -> builtins.list[SymbiontAgent]:
        data = await self._http.json("GET", "/v1/symbiont-agents")
        return [SymbiontAgent.model_validate(a) for a in data["items"]]

    async def get_agent(self, agent_id: str) -> SymbiontAgent:
        return SymbiontAgent.model_validate(await self._http.json("GET", f"/v1/symbiont-agents/{agent_id}"))

    async def delete_agent(self, agent_id: str) -> None:
        await self._http.json("DELETE", f"/v1/symbiont-agents/{agent_id}")

    async def status(self, agent_id: str) -> AgentStatus:
        """State and live resource usage (CPU %, memory, active tasks) of an agent."""
        return AgentStatus.model_validate(await self._http.json("GET", f"/v1/symbiont-agents/{agent_id}/status"))

    async def metrics(self, agent_id: str) -> AgentMetrics:
        return AgentMetrics.model_validate(await self._http.json("GET", f"/v1/symbiont-agents/{agent_id}/metrics"))

    async def deploy(
        self, agent_id: str, *, environment: str = "development", config_overrides: dict[str, Any] | None = None
    ) -> Deployment:
        """Run the agent in a new sandbox; returns once it runs (or failed)."""
        body = {"agent_id": agent_id, "environment": environment, "config_overrides": config_overrides or {}}
        return Deployment.model_validate(await self._http.json("POST", "/v1/agent-deployments", json=body))

    async def get(self, deployment_id: str) -> Deployment:
        return Deployment.model_validate(await self._http.json("GET", f"/v1/agent-deployments/{deployment_id}"))

    async def list(self, *, agent_id: str | None = None) -> builtins.list[Deployment]:
        data = await self._http.json("GET", "/v1/agent-deployments", params={"agent_id": agent_id})
        return [Deployment.model_validate(d) for d in data["items"]]

    async def stop(self, deployment_id: str) -> Deployment:
        data = await self._http.json("POST", f"/v1/agent-deployments/{deployment_id}/stop")
        return Deployment.model_validate(data)

    async def logs(self, deployment_id: str) -> str:
        data = await self._http.json("GET", f"/v1/agent-deployments/{deployment_id}/logs")
        return str(data["log"])

    async def send_task(self, deployment_id: str, payload: Any = None, *, action: str = "run") -> DeploymentTask:
        body = {"action": action, "input": payload}
        data = await self._http.json("POST", f"/v1/agent-deployments/{deployment_id}/tasks", json=body)
        return DeploymentTask.model_validate(data)

    async def get_task(self, deployment_id: str, task_id: str) -> DeploymentTask:
        data = await self._http.json("GET", f"/v1/agent-deployments/{deployment_id}/tasks/{task_id}")
        return DeploymentTask.model_validate(data)
