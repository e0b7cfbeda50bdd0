"""Agent registry: ``/v1/agents``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from portside.server.agents.service import AgentPatch, AgentService, AgentSpec
from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.context import AppContext, get_ctx
from portside.server.deps import require
from portside.server.flows.schemas import AgentDeleted, AgentList, AgentOut
from portside.server.flows.serialize import agent_dict

router = APIRouter(prefix="/v1/agents", tags=["agents"], route_class=WireRoute)


def _svc(ctx: AppContext) -> AgentService:
    return ctx.service("agents", AgentService)


@router.post("", status_code=201, response_model=AgentOut)
async def create_agent(
    body: AgentSpec, ctx: AppContext = Depends(get_ctx), principal: Principal = Depends(require("write"))
) -> dict[str, Any]:
    """Register an agent: an HTTP ``endpoint`` (Portside POSTs to ``<endpoint>/execute``) or a worker ``capability``."""
    return agent_dict(await _svc(ctx).create(body, created_by=principal.owner))


@router.get("", response_model=AgentList)
async def list_agents(
    type: str | None = Query(default=None, max_length=64),
    capability: str | None = Query(default=None, max_length=200),
    active: bool | None = None,
    ctx: AppContext = Depends(get_ctx),
    _: Principal = Depends(require("read")),
) -> dict[str, Any]:
    agents = await _svc(ctx).list(type=type, capability=capability, active=active)
    return {"items": [agent_dict(a) for a in agents], "total": len(agents)}


@router.get("/{agent_id}", response_model=AgentOut)
async def get_agent(
    agent_id: str, ctx: AppContext = Depends(get_ctx), _: Principal = Depends(require("read"))
) -> dict[str, Any]:
    return agent_dict(await _svc(ctx).get(agent_id))


@router.patch("/{agent_id}", response_model=AgentOut)
async def update_agent(
    agent_id: str, body: AgentPatch, ctx: AppContext = Depends(get_ctx), _: Principal = Depends(require("write"))
) -> dict[str, Any]:
    return agent_dict(await _svc(ctx).update(agent_id, body))


@router.delete("/{agent_id}", response_model=AgentDeleted)
async def delete_agent(
    agent_id: str, ctx: AppContext = Depends(get_ctx), _: Principal = Depends(require("write"))
) -> dict[str, Any]:
    return {**agent_dict(await _svc(ctx).delete(agent_id)), "deleted": True}
