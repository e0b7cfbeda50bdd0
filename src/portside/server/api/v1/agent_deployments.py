"""Symbiont-style agents and their deployments: ``/v1/symbiont-agents``, ``/v1/agent-deployments``.

(``/v1/agents`` is the flows agent registry; these are agents defined by the Symbiont ``Agent`` model or
compiled from the Symbiont DSL, deployed as long-lived processes in sandboxes.)
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, Field

from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.clock import isoformat, utcnow
from portside.server.context import AppContext, get_ctx
from portside.server.deployments.agents import AgentRegistry
from portside.server.deployments.schemas import (
    AgentFields,
    AgentMetricsOut,
    AgentStatusOut,
    CompileResult,
    DeploymentList,
    DeploymentLog,
    DeploymentOut,
    DeploymentTaskOut,
    SymbiontAgentDeleted,
    SymbiontAgentList,
    SymbiontAgentOut,
    TaskQueued,
)
from portside.server.deployments.service import DeploymentService
from portside.server.deployments.tables import AgentDeploymentRow, SymbiontAgentRow
from portside.server.deps import require
from portside.server.dsl import render_compile_response
from portside.server.sandboxes.service import SandboxService

router = APIRouter(prefix="/v1", tags=["agent deployments"], route_class=WireRoute)
Reader = Depends(require("read"))
Writer = Depends(require("write"))


def registry(ctx: AppContext = Depends(get_ctx)) -> AgentRegistry:
    return ctx.service("symbiont_agents", AgentRegistry)


def deployments(ctx: AppContext = Depends(get_ctx)) -> DeploymentService:
    return ctx.service("agent_deployments", DeploymentService)


class AgentBody(AgentFields):
    """The Symbiont SDK ``Agent`` (``id`` optional here: generated when absent)."""


class CompileBody(BaseModel):
    dsl_content: str = Field(max_length=1_000_000)
    agent_name: str | None = Field(default=None, max_length=128)
    validate_only: bool = False


class DeployBody(BaseModel):
    agent_id: str
    environment: str = "development"
    config_overrides: dict[str, Any] = Field(default_factory=dict)


class TaskBody(BaseModel):
    action: str = "run"
    input: Any = None


def agent_view(row: SymbiontAgentRow, *, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "system_prompt": row.system_prompt,
        "tools": list(row.tools or []),
        "model": row.model,
        "temperature": row.temperature,
        "top_p": row.top_p,
        "max_tokens": row.max_tokens,
        "origin": row.origin,
        "version": row.version,
        "owner": row.owner,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
    }
    if full:
        out["definition"] = row.definition
        out["dsl_source"] = row.dsl_source
    return out


def deployment_view(row: AgentDeploymentRow, base_url: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """``AgentDeployResponse`` plus sandbox, process and usage facts."""
    return {
        "deployment_id": row.id,
        "agent_id": row.agent_id,
        "status": row.status,
        "deployed_at": isoformat(row.started_at or row.created_at),
        "endpoint_url": f"{base_url.rstrip('/')}/v1/agent-deployments/{row.id}",
        "environment": row.environment,
        "config_overrides": row.config_overrides,
        "sandbox_id": row.sandbox_id,
        "pid": row.pid,
        "created_at": isoformat(row.created_at),
        "stopped_at": isoformat(row.stopped_at) if row.stopped_at else None,
        "last_error": row.last_error,
        "usage": usage if usage is not None else dict(row.snapshot or {}),
    }


async def render_deployment(d: DeploymentService, row: AgentDeploymentRow, request: Request) -> dict[str, Any]:
    return deployment_view(row, str(request.base_url), await d.usage(row))


# ---------------------------------------------------------------- agents


@router.post("/symbiont-agents", status_code=201, response_model=SymbiontAgentOut)
async def create_agent(body: AgentBody, r: AgentRegistry = Depends(registry), caller: Principal = Writer) -> Any:
    return agent_view(await r.create(caller, body.model_dump()), full=True)


@router.get("/symbiont-agents", response_model=SymbiontAgentList)
async def list_agents(r: AgentRegistry = Depends(registry), caller: Principal = Reader) -> Any:
    rows = await r.list(caller)
    return {"items": [agent_view(a) for a in rows], "total": len(rows)}


@router.post("/symbiont-agents/compile", response_model=CompileResult)
async def compile_agent(body: CompileBody, r: AgentRegistry = Depends(registry), caller: Principal = Writer) -> Any:
    """Compile Symbiont DSL; errors carry line and column. Stores the agent unless ``validate_only``."""
    result, row = await r.compile(caller, body.dsl_content, body.agent_name, validate_only=body.validate_only)
    return render_compile_response(result, agent_id=row.id if row else None, compiled_at=utcnow())


@router.get("/symbiont-agents/{agent_id}", response_model=SymbiontAgentOut)
async def get_agent(agent_id: str, r: AgentRegistry = Depends(registry), caller: Principal = Reader) -> Any:
    return agent_view(await r.get(caller, agent_id), full=True)


@router.delete("/symbiont-agents/{agent_id}", response_model=SymbiontAgentDeleted)
async def delete_agent(agent_id: str, r: AgentRegistry = Depends(registry), caller: Principal = Writer) -> Any:
    await r.delete(caller, agent_id)
    return {"id": agent_id, "deleted": True}


@router.get("/symbiont-agents/{agent_id}/status", response_model=AgentStatusOut)
async def agent_status(agent_id: str, d: DeploymentService = Depends(deployments), caller: Principal = Reader) -> Any:
    return await d.agent_status(caller, agent_id)


@router.get("/symbiont-agents/{agent_id}/metrics", response_model=AgentMetricsOut)
async def agent_metrics(agent_id: str, d: DeploymentService = Depends(deployments), caller: Principal = Reader) -> Any:
    return await d.agent_metrics(caller, agent_id)


# ---------------------------------------------------------------- deployments


@router.post("/agent-deployments", status_code=201, response_model=DeploymentOut)
async def deploy(
    body: DeployBody, request: Request, d: DeploymentService = Depends(deployments), caller: Principal = Writer
) -> Any:
    """Run the agent in a new sandbox; returns once it runs (or failed), at most ~25 s."""
    row = await d.deploy(caller, body.agent_id, environment=body.environment, config_overrides=body.config_overrides)
    return await render_deployment(d, row, request)


@router.get("/agent-deployments", response_model=DeploymentList)
async def list_deployments(
    request: Request,
    agent_id: str | None = None,
    d: DeploymentService = Depends(deployments),
    caller: Principal = Reader,
) -> Any:
    rows = await d.list(caller, agent_id)
    return {"items": [await render_deployment(d, r, request) for r in rows], "total": len(rows)}


@router.get("/agent-deployments/{deployment_id}", response_model=DeploymentOut)
async def get_deployment(
    deployment_id: str, request: Request, d: DeploymentService = Depends(deployments), caller: Principal = Reader
) -> Any:
    row = await d.get(caller, deployment_id)
    out = await render_deployment(d, row, request)
    out["sandbox"] = await d.sandbox_stats(row)
    return out


@router.post("/agent-deployments/{deployment_id}/stop", response_model=DeploymentOut)
async def stop_deployment(
    deployment_id: str, request: Request, d: DeploymentService = Depends(deployments), caller: Principal = Writer
) -> Any:
    return await render_deployment(d, await d.stop(caller, deployment_id), request)


@router.get("/agent-deployments/{deployment_id}/logs", response_model=DeploymentLog)
async def deployment_logs(
    deployment_id: str, d: DeploymentService = Depends(deployments), caller: Principal = Reader
) -> Any:
    return {"deployment_id": deployment_id, "log": await d.logs(caller, deployment_id)}


@router.post("/agent-deployments/{deployment_id}/tasks", status_code=202, response_model=TaskQueued)
async def submit_task(
    deployment_id: str, body: TaskBody, d: DeploymentService = Depends(deployments), caller: Principal = Writer
) -> Any:
    return await d.submit_task(caller, deployment_id, action=body.action, payload=body.input)


@router.get("/agent-deployments/{deployment_id}/tasks/{task_id}", response_model=DeploymentTaskOut)
async def get_task(
    deployment_id: str, task_id: str, d: DeploymentService = Depends(deployments), caller: Principal = Reader
) -> Any:
    return await d.task(caller, deployment_id, task_id)


# ---------------------------------------------------------------- wiring


def install(app: FastAPI, ctx: AppContext) -> None:
    """Build the agent registry and deployment service (on the sandbox service); mount the routes."""
    reg = AgentRegistry(ctx.db)
    service = DeploymentService(reg, ctx.service("sandboxes", SandboxService))
    ctx.services["symbiont_agents"] = reg
    ctx.services["agent_deployments"] = service
    ctx.on_start.append(service.start)
    ctx.on_stop.append(service.stop_all)
    app.include_router(router)
