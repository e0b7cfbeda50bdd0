"""Where a webhook's work goes: a flow execution, or a task for a deployed (Symbiont) agent.

Both are started at once; when the input has ``wait_seconds`` the dispatcher waits that long for
the result. Work still running after that is answered ``accepted`` with where to poll.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from portside.server.auth import Principal
from portside.server.errors import DomainError, NotFound, Unavailable
from portside.server.inputs.spec import split_target

COMPLETED, ACCEPTED, FAILED = "completed", "accepted", "failed"
_AGENT_POLL = 0.1


@dataclass(frozen=True)
class Dispatched:
    """What the target did with a request (within the wait)."""

    outcome: str
    target: str
    ref: str | None
    refs: dict[str, Any]
    output: Any = None
    error: dict[str, Any] | None = None


class TargetRunner:
    """Starts the work of one request on its target."""

    def __init__(self, services: Mapping[str, Any]) -> None:
        self.services = services

    async def resolve(self, target: str) -> tuple[str, str]:
        """(``flow`` | ``agent``, id): a bare id is a Symbiont agent when one has it, else a flow."""
        kind, ident = split_target(target)
        if kind != "auto":
            return kind, ident
        if await self._symbiont_agent_exists(ident):
            return "agent", ident
        return "flow", ident

    async def _symbiont_agent_exists(self, agent_id: str) -> bool:
        registry = self.services.get("symbiont_agents")
        if registry is None:
            return False
        from portside.server.deployments.tables import SymbiontAgentRow

        async with registry.db.session() as s:
            found = (await s.execute(select(SymbiontAgentRow.id).where(SymbiontAgentRow.id == agent_id))).first()
        return found is not None

    async def run(self, target: str, envelope: dict[str, Any], *, owner: str, input_id: str, wait: float) -> Dispatched:
        try:
            kind, ident = await self.resolve(target)
            if kind == "agent":
                return await self._agent(target, ident, envelope, owner=owner, input_id=input_id, wait=wait)
            return await self._flow(target, ident, envelope, owner=owner, input_id=input_id, wait=wait)
        except DomainError as exc:
            return Dispatched(FAILED, target, None, {}, error={"code": exc.code, "message": exc.message})

    async def _flow(
        self, target: str, flow_id: str, envelope: dict[str, Any], *, owner: str, input_id: str, wait: float
    ) -> Dispatched:
        executions = self.services.get("executions")
        if executions is None:
            raise Unavailable("the flows area is not installed on this server", code="flows_unavailable")
        view = await executions.start(
            flow_id, envelope, owner=owner, metadata={"source": "http_input", "input_id": input_id}
        )
        if wait > 0:
            view = await executions.wait(view.execution_id, timeout=wait, with_nodes=False)
        refs = {"execution_id": view.execution_id, "status_url": f"/v1/executions/{view.execution_id}"}
        if view.status == "completed":
            return Dispatched(COMPLETED, target, view.execution_id, refs, output=view.output_data)
        if view.status in {"failed", "cancelled"}:
            error = {"code": f"execution_{view.status}", "message": view.error_message or f"execution {view.status}"}
            return Dispatched(FAILED, target, view.execution_id, refs, error=error)
        return Dispatched(ACCEPTED, target, view.execution_id, refs)

    async def _agent(
        self, target: str, agent_id: str, envelope: dict[str, Any], *, owner: str, input_id: str, wait: float
    ) -> Dispatched:
        deployments = self.services.get("agent_deployments")
        if deployments is None:
            raise Unavailable("agent deployments are not available on this server", code="agent_runtime_unavailable")
        running = [r for r in await deployments.for_agent(agent_id) if r.status == "running"]
        if not running:
            raise NotFound(
                f"agent '{agent_id}' has no running deployment (deploy it first)",
                code="agent_not_deployed",
                details={"agent_id": agent_id},
            )
        deployment = random.choice(running)
        actor = Principal(
            key_id=f"http-input:{input_id}", name="http input", owner=owner, scopes=frozenset({"read", "write"})
        )
        task = await deployments.submit_task(actor, deployment.id, action="webhook", payload=envelope)
        task_id = str(task["task_id"])
        refs = {
            "deployment_id": deployment.id,
            "task_id": task_id,
            "status_url": f"/v1/agent-deployments/{deployment.id}/tasks/{task_id}",
        }
        deadline = time.monotonic() + wait
        while True:
            result = await deployments.task(actor, deployment.id, task_id)
            status = result.get("status")
            if status == "completed":
                return Dispatched(COMPLETED, target, task_id, refs, output=result.get("output"))
            if status == "failed":
                error = {"code": "agent_task_failed", "message": str(result.get("error") or "the agent task failed")}
                return Dispatched(FAILED, target, task_id, refs, error=error)
            if time.monotonic() >= deadline:
                return Dispatched(ACCEPTED, target, task_id, refs)
            await asyncio.sleep(_AGENT_POLL)
