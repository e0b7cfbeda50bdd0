"""Run a Symbiont ``WorkflowExecutionRequest`` as a flow execution.

``workflow_id`` names a saved flow, or *is* a flow definition (a JSON or YAML document, saved with
``mode=upsert`` under its ``flow_id`` before running). ``parameters`` become the execution's
``input_data``; ``agent_id`` is recorded in the execution's metadata. The call waits up to
``wait`` seconds for the result (the Symbiont SDK has no client timeout, so the wait is bounded);
an execution still running after that is returned with its status and ``result: null`` — poll
``GET /api/v1/workflows/{execution_id}`` or ``/v1/executions/{execution_id}``.
"""

from __future__ import annotations

from typing import Any

from portside.server.auth import Principal
from portside.server.clock import isoformat
from portside.server.errors import InvalidInput
from portside.server.flows.loader import parse_flow_document
from portside.server.flows.service import ExecutionService, FlowService
from portside.server.flows.views import ExecutionView

DEFAULT_WAIT_SECONDS = 10.0
MAX_WAIT_SECONDS = 300.0


def _is_document(workflow_id: str) -> bool:
    text = workflow_id.lstrip()
    return text.startswith("{") or "\n" in workflow_id


def workflow_response(view: ExecutionView) -> dict[str, Any]:
    """``WorkflowExecutionResponse`` (``execution_id``, ``status``, ``started_at``, ``result``) plus details."""
    result: dict[str, Any] | None = None
    if view.status == "completed":
        out = view.output_data
        result = out if isinstance(out, dict) else {"output": out}
    return {
        "execution_id": view.execution_id,
        "status": view.status,
        "started_at": isoformat(view.started_at or view.created_at),
        "result": result,
        "workflow_id": view.flow_id,
        "flow_version": view.flow_version,
        "completed_at": isoformat(view.completed_at) if view.completed_at else None,
        "error": {"message": view.error_message, **(view.error or {})} if view.error_message else None,
        "agent_id": view.metadata.get("agent_id"),
        "status_url": f"/v1/executions/{view.execution_id}",
    }


class WorkflowRunner:
    """Translates workflow requests into flow executions."""

    def __init__(self, flows: FlowService, executions: ExecutionService) -> None:
        self.flows = flows
        self.executions = executions

    async def execute(
        self,
        caller: Principal,
        workflow_id: str,
        parameters: dict[str, Any],
        *,
        agent_id: str | None = None,
        wait: float = DEFAULT_WAIT_SECONDS,
    ) -> dict[str, Any]:
        """Start the workflow and wait (bounded) for it; 404 ``flow_not_found`` for an unknown id."""
        if not isinstance(parameters, dict):
            raise InvalidInput("parameters must be a JSON object", code="invalid_input")
        flow_id = workflow_id
        if _is_document(workflow_id):
            definition, agents = parse_flow_document(workflow_id, "<workflow>")
            if agents:
                raise InvalidInput(
                    "an inline workflow cannot register agents; register them with /v1/agents first",
                    code="invalid_workflow",
                )
            view, _ = await self.flows.save(definition, created_by=caller.owner, source="symbiont", mode="upsert")
            flow_id = view.flow_id
        metadata: dict[str, Any] = {"source": "symbiont"}
        if agent_id:
            metadata["agent_id"] = agent_id
        execution = await self.executions.start(flow_id, parameters, owner=caller.owner, metadata=metadata)
        wait = max(0.0, min(wait, MAX_WAIT_SECONDS))
        if wait > 0:
            execution = await self.executions.wait(execution.execution_id, timeout=wait, with_nodes=False)
        return workflow_response(execution)

    async def get(self, caller: Principal, execution_id: str) -> dict[str, Any]:
        owner = None if caller.has("admin") else caller.owner
        return workflow_response(await self.executions.get(execution_id, owner=owner, with_nodes=False))
