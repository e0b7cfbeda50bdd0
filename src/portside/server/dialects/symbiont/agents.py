"""Symbiont agents, deployments and DSL: ``/api/v1/agents...`` and ``/api/v1/dsl/compile``.

Literal paths (``agents/deploy``, ``agents/deployments...``) are declared before ``agents/{agent_id}``.
Lists are bare JSON arrays, as the SDK expects.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from portside.server.api.v1.agent_deployments import agent_view, render_deployment
from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.clock import utcnow
from portside.server.context import AppContext, get_ctx
from portside.server.deployments.agents import AGENT_ID, AgentRegistry
from portside.server.deployments.schemas import (
    AgentFields,
    AgentMetricsOut,
    AgentStatusOut,
    CompileResult,
    DeploymentOut,
    SymbiontAgentOut,
)
from portside.server.deployments.service import DeploymentService
from portside.server.dsl import render_compile_response
from portside.server.ratelimit import rate_limited

router = APIRouter(tags=["symbiont"], route_class=WireRoute)
Reader = Depends(rate_limited("read"))
Writer = Depends(rate_limited("write"))


def registry(ctx: AppContext = Depends(get_ctx)) -> AgentRegistry:
    return ctx.service("symbiont_agents", AgentRegistry)


def deployments(ctx: AppContext = Depends(get_ctx)) -> DeploymentService:
    return ctx.service("agent_deployments", DeploymentService)


class Agent(AgentFields):
    """``symbiont.Agent``: all nine fields are sent by the SDK, ``id`` included."""

    id: str = Field(json_schema_extra={"pattern": AGENT_ID.pattern})


class AgentDeployRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    agent_id: str
    environment: str = "development"
    config_overrides: dict[str, Any] = Field(default_factory=dict)


class DslCompileRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    dsl_content: str = Field(max_length=1_000_000)
    agent_name: str | None = Field(default=None, max_length=128)
    validate_only: bool = False


@router.get("/agents")
async def list_agents(r: AgentRegistry = Depends(registry), caller: Principal = Reader) -> list[str]:
    return [a.id for a in await r.list(caller)]


@router.post("/agents", response_model=SymbiontAgentOut)
async def create_agent(body: Agent, r: AgentRegistry = Depends(registry), caller: Principal = Writer) -> Any:
    return agent_view(await r.create(caller, body.model_dump()))


@router.post("/agents/deploy", response_model=DeploymentOut)
async def deploy_agent(
    body: AgentDeployRequest, request: Request, d: DeploymentService = Depends(deployments), caller: Principal = Writer
) -> Any:
    row = await d.deploy(caller, body.agent_id, environment=body.environment, config_overrides=body.config_overrides)
    return await render_deployment(d, row, request)


@router.get("/agents/deployments", response_model=list[DeploymentOut])
async def list_agent_deployments(
    request: Request,
    agent_id: str | None = None,
    d: DeploymentService = Depends(deployments),
    caller: Principal = Reader,
) -> list[dict[str, Any]]:
    return [await render_deployment(d, r, request) for r in await d.list(caller, agent_id)]


@router.get("/agents/deployments/{deployment_id}", response_model=DeploymentOut)
async def get_agent_deployment(
    deployment_id: str, request: Request, d: DeploymentService = Depends(deployments), caller: Principal = Reader
) -> Any:
    return await render_deployment(d, await d.get(caller, deployment_id), request)


@router.post("/agents/deployments/{deployment_id}/stop", response_model=DeploymentOut)
async def stop_agent_deployment(
    deployment_id: str, request: Request, d: DeploymentService = Depends(deployments), caller: Principal = Writer
) -> Any:
    return await render_deployment(d, await d.stop(caller, deployment_id), request)


@router.get("/agents/{agent_id}", response_model=AgentStatusOut)
async def get_agent_status(
    agent_id: str, d: DeploymentService = Depends(deployments), caller: Principal = Reader
) -> Any:
    return await d.agent_status(caller, agent_id)


@router.get("/agents/{agent_id}/metrics", response_model=AgentMetricsOut)
async def get_agent_metrics(
    agent_id: str, d: DeploymentService = Depends(deployments), caller: Principal = Reader
) -> Any:
    return await d.agent_metrics(caller, agent_id)


@router.post("/dsl/compile", response_model=CompileResult)
async def compile_dsl(body: DslCompileRequest, r: AgentRegistry = Depends(registry), caller: Principal = Writer) -> Any:
    result, row = await r.compile(caller, body.dsl_content, body.agent_name, validate_only=body.validate_only)
    return render_compile_response(result, agent_id=row.id if row else None, compiled_at=utcnow())
