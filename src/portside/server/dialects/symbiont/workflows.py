"""Symbiont workflows: ``POST /api/v1/workflows`` runs a flow on the flows engine (``portside.server.workflows``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.context import AppContext, get_ctx
from portside.server.flows.service import ExecutionService, FlowService
from portside.server.ratelimit import rate_limited
from portside.server.workflows.schemas import WorkflowExecutionOut
from portside.server.workflows.service import DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS, WorkflowRunner

router = APIRouter(tags=["symbiont"], route_class=WireRoute)
Reader = Depends(rate_limited("read"))
Writer = Depends(rate_limited("write"))


def runner(ctx: AppContext = Depends(get_ctx)) -> WorkflowRunner:
    return WorkflowRunner(ctx.service("flows", FlowService), ctx.service("executions", ExecutionService))


class WorkflowExecutionRequest(BaseModel):
    """``symbiont.WorkflowExecutionRequest``."""

    model_config = ConfigDict(extra="ignore")

    workflow_id: str = Field(min_length=1, max_length=2_000_000)
    parameters: dict[str, Any] = Field(default_factory=dict)
    agent_id: str | None = Field(default=None, max_length=200)


@router.post("/workflows", response_model=WorkflowExecutionOut)
async def execute_workflow(
    body: WorkflowExecutionRequest,
    wait: float = Query(DEFAULT_WAIT_SECONDS, ge=0, le=MAX_WAIT_SECONDS),
    r: WorkflowRunner = Depends(runner),
    caller: Principal = Writer,
) -> Any:
    """``WorkflowExecutionResponse``: ``result`` is the flow's output when it finished within ``wait`` seconds."""
    return await r.execute(caller, body.workflow_id, body.parameters, agent_id=body.agent_id, wait=wait)


@router.get("/workflows/{execution_id}", response_model=WorkflowExecutionOut)
async def get_workflow_execution(
    execution_id: str, r: WorkflowRunner = Depends(runner), caller: Principal = Reader
) -> Any:
    return await r.get(caller, execution_id)
