"""The AI Spine door: the routes ai-spine-sdk 2.3.1 calls, on the same services as ``/v1``.

Paths are at the server root (``/flows``, ``/executions``, ``/agents``, ``/health``, ``/metrics``,
``/status``) plus ``/api/v1/users/me`` and ``/api/v1/user/keys/*``. Error bodies are what the SDK
parses: top-level ``message`` and ``details``; validation errors are 400. Every route except
``/health`` needs a key (the SDK always sends one, even on its "no auth" key endpoints) and is
charged to the per-key rate limiter. Key management goes through the key service's one rule
(docs/security/keys.md): generating or revoking a user's key needs an admin key, as ``/v1/keys`` does.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from portside import __version__
from portside.server.agents.service import AgentService
from portside.server.api.params import MAX_OFFSET
from portside.server.api.wire import WireRoute
from portside.server.auth import DEFAULT_SCOPES, KeyInfo, Principal
from portside.server.clock import isoformat, utcnow
from portside.server.context import AppContext, get_ctx
from portside.server.deps import optional_principal
from portside.server.errors import InvalidInput, NotFound
from portside.server.flows.engine import Engine
from portside.server.flows.loader import agent_spec
from portside.server.flows.schemas import (
    AgentOut,
    FlowOut,
    SpineAgentDeleted,
    SpineAgentList,
    SpineExecution,
    SpineExecutionCancelled,
    SpineExecutionList,
    SpineExecutionResults,
    SpineExecutionStarted,
    SpineFlowDeleted,
    SpineFlowList,
    SpineHealth,
    SpineKeyGenerated,
    SpineKeyRevoked,
    SpineMetrics,
    SpineMyKey,
    SpineStatus,
    SpineUser,
)
from portside.server.flows.serialize import agent_dict, execution_dict, flow_dict, node_dict
from portside.server.flows.service import ExecutionService, FlowService
from portside.server.ratelimit import limiter_of, rate_limited

PREFIXES = ("/flows", "/executions", "/agents", "/health", "/metrics", "/status", "/api/v1/users", "/api/v1/user/")
USER_KEY_NAME = "ai-spine user key"
UNLIMITED_CREDITS = 1_000_000_000
_STARTED = time.time()

router = APIRouter(tags=["ai-spine"], route_class=WireRoute)
reader = rate_limited("read")
writer = rate_limited("write")


def render_error(status: int, code: str, message: str, details: dict[str, Any]) -> JSONResponse:
    """ai-spine-sdk reads ``message`` and ``details`` (``details.error_code`` must be a string)."""
    body = {"message": message, "detail": message, "code": code, "details": {**details, "error_code": code}}
    return JSONResponse(body, status_code=status)


def _svc(ctx: AppContext) -> tuple[FlowService, ExecutionService, AgentService]:
    return (
        ctx.service("flows", FlowService),
        ctx.service("executions", ExecutionService),
        ctx.service("agents", AgentService),
    )


def _owner(principal: Principal) -> str | None:
    return None if principal.has("admin") else principal.owner


# ------------------------------------------------------------------ flows and executions


class ExecuteRequest(BaseModel):
    """``POST /flows/execute`` (AI Spine's ExecutionRequest)."""

    model_config = ConfigDict(extra="ignore")

    flow_id: str = Field(min_length=1, max_length=100)
    input_data: dict[str, Any]
    metadata: dict[str, Any] | None = None
    user_id: str | None = None
    priority: int = Field(default=0, ge=0, le=10)
    timeout: float | None = Field(default=None, gt=0, le=7 * 86_400)


@router.post("/flows/execute", response_model=SpineExecutionStarted)
async def execute_flow(
    body: ExecuteRequest, ctx: AppContext = Depends(get_ctx), principal: Principal = Depends(writer)
) -> dict[str, Any]:
    """Start an execution; returns at once with status ``pending``."""
    _, executions, _ = _svc(ctx)
    meta = dict(body.metadata or {})
    if body.priority:
        meta.setdefault("priority", body.priority)
    view = await executions.start(
        body.flow_id, body.input_data, owner=principal.owner, metadata=meta, timeout_seconds=body.timeout
    )
    return {
        "execution_id": view.execution_id,
        "flow_id": view.flow_id,
        "status": view.status,
        "created_at": isoformat(view.created_at),
        "result": None,
        "error": None,
        "execution_time": None,
    }


@router.get("/flows", response_model=SpineFlowList)
async def list_flows(ctx: AppContext = Depends(get_ctx), _: Principal = Depends(reader)) -> dict[str, Any]:
    flows = await _svc(ctx)[0].list()
    return {"flows": [flow_dict(f) for f in flows], "count": len(flows)}


@router.get("/flows/{flow_id}", response_model=FlowOut)
async def get_flow(flow_id: str, ctx: AppContext = Depends(get_ctx), _: Principal = Depends(reader)) -> dict[str, Any]:
    return flow_dict(await _svc(ctx)[0].get(flow_id))


@router.post("/flows", status_code=201, response_model=FlowOut)
async def create_flow(
    definition: dict[str, Any] = Body(...), ctx: AppContext = Depends(get_ctx), principal: Principal = Depends(writer)
) -> dict[str, Any]:
    """Create a flow (the AI Spine backend's ``POST /flows``)."""
    view, _ = await _svc(ctx)[0].save(definition, created_by=principal.owner, mode="create")
    return flow_dict(view)


@router.put("/flows/{flow_id}", response_model=FlowOut)
async def update_flow(
    flow_id: str,
    definition: dict[str, Any] = Body(...),
    ctx: AppContext = Depends(get_ctx),
    principal: Principal = Depends(writer),
) -> dict[str, Any]:
    if definition.setdefault("flow_id", flow_id) != flow_id:
        raise InvalidInput("Flow ID in path doesn't match flow ID in body")
    view, _ = await _svc(ctx)[0].save(definition, created_by=principal.owner, mode="update")
    return flow_dict(view)


@router.delete("/flows/{flow_id}", response_model=SpineFlowDeleted)
async def delete_flow(
    flow_id: str, ctx: AppContext = Depends(get_ctx), _: Principal = Depends(writer)
) -> dict[str, Any]:
    await _svc(ctx)[0].delete(flow_id)
    return {"message": f"Flow '{flow_id}' deleted successfully", "status": "deleted"}


@router.get("/executions", response_model=SpineExecutionList)
async def list_executions(
    limit: int = Query(default=20, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
    status: str | None = Query(default=None, max_length=16),
    flow_id: str | None = Query(default=None, max_length=100),
    ctx: AppContext = Depends(get_ctx),
    principal: Principal = Depends(reader),
) -> dict[str, Any]:
    items, total = await _svc(ctx)[1].list(
        owner=_owner(principal), flow_id=flow_id, status=status, limit=limit, offset=offset
    )
    return {
        "executions": [execution_dict(v, nodes=False) for v in items],
        "count": len(items),
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def _execution_body(view: Any) -> dict[str, Any]:
    body = execution_dict(view, nodes=False)
    body["node_results"] = [node_dict(n, view.execution_id) for n in view.nodes]
    return body


@router.get("/executions/{execution_id}", response_model=SpineExecution)
async def get_execution(
    execution_id: str, ctx: AppContext = Depends(get_ctx), principal: Principal = Depends(reader)
) -> dict[str, Any]:
    return _execution_body(await _svc(ctx)[1].get(execution_id, owner=_owner(principal)))


@router.get("/executions/{execution_id}/results", response_model=SpineExecutionResults)
async def execution_results(
    execution_id: str, ctx: AppContext = Depends(get_ctx), principal: Principal = Depends(reader)
) -> dict[str, Any]:
    view = await _svc(ctx)[1].get(execution_id, owner=_owner(principal))
    return {
        "execution": execution_dict(view, nodes=False),
        "node_results": [node_dict(n, view.execution_id) for n in view.nodes],
    }


@router.post("/executions/{execution_id}/cancel", response_model=SpineExecutionCancelled)
async def cancel_execution(
    execution_id: str, ctx: AppContext = Depends(get_ctx), principal: Principal = Depends(writer)
) -> dict[str, Any]:
    view = await _svc(ctx)[1].cancel(execution_id, owner=_owner(principal))
    return {**execution_dict(view, nodes=False), "message": "Execution cancelled successfully"}


# ------------------------------------------------------------------ agents


@router.get("/agents", response_model=SpineAgentList)
async def list_agents(ctx: AppContext = Depends(get_ctx), _: Principal = Depends(reader)) -> dict[str, Any]:
    agents = await _svc(ctx)[2].list()
    return {"agents": [agent_dict(a) for a in agents], "count": len(agents), "authenticated": True}


@router.get("/agents/{agent_id}", response_model=AgentOut)
async def get_agent(
    agent_id: str, ctx: AppContext = Depends(get_ctx), _: Principal = Depends(reader)
) -> dict[str, Any]:
    return agent_dict(await _svc(ctx)[2].get(agent_id))


_AGENT_FIELDS = {
    "id",
    "agent_id",
    "name",
    "description",
    "endpoint",
    "capability",
    "worker_capability",
    "capabilities",
    "type",
    "agent_type",
    "configuration",
    "metadata",
    "is_active",
}


@router.post("/agents", status_code=201, response_model=AgentOut)
async def create_agent(
    agent_config: dict[str, Any] = Body(...), ctx: AppContext = Depends(get_ctx), principal: Principal = Depends(writer)
) -> dict[str, Any]:
    """Register an agent. Unknown keys of the SDK's free-form ``agent_config`` go to ``metadata``."""
    known = {k: v for k, v in agent_config.items() if k in _AGENT_FIELDS}
    extra = {k: v for k, v in agent_config.items() if k not in _AGENT_FIELDS}
    if extra:
        meta = known.get("metadata")
        known["metadata"] = {**(meta if isinstance(meta, dict) else {}), **extra}
    spec = agent_spec(known)
    return agent_dict(await _svc(ctx)[2].create(spec, created_by=principal.owner))


@router.delete("/agents/{agent_id}", response_model=SpineAgentDeleted)
async def delete_agent(
    agent_id: str, ctx: AppContext = Depends(get_ctx), _: Principal = Depends(writer)
) -> dict[str, Any]:
    await _svc(ctx)[2].delete(agent_id)
    return {"message": f"Agent '{agent_id}' unregistered successfully", "agent_id": agent_id}


# ------------------------------------------------------------------ system


@router.get(
    "/health",
    response_model=SpineHealth,
    responses={503: {"model": SpineHealth, "description": "The database is unreachable."}},
)
async def health(
    ctx: AppContext = Depends(get_ctx), caller: Principal | None = Depends(optional_principal)
) -> JSONResponse:
    """Liveness (no key needed); ``status`` is ``healthy`` or ``unhealthy``. Details for key holders only."""
    checks: dict[str, Any] = {}
    checks["database"] = await ctx.db.check()
    ok = bool(checks["database"]["ok"])
    engine = ctx.services.get("flow_engine")
    checks["engine"] = {"ok": isinstance(engine, Engine) and engine.started and not engine.stopping}
    body: dict[str, Any] = {"status": "healthy" if ok else "unhealthy", "timestamp": isoformat(utcnow())}
    if caller is not None:
        body.update(
            version=__version__,
            uptime_seconds=int(time.time() - _STARTED),
            message="Portside (AI Spine compatible API) is running",
            startup_complete=True,
            checks=checks,
        )
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", response_model=SpineMetrics)
async def metrics(ctx: AppContext = Depends(get_ctx), _: Principal = Depends(reader)) -> dict[str, Any]:
    """JSON counters: executions by status, latency percentiles, agents, flows."""
    flows, executions, agents = _svc(ctx)
    data = await executions.metrics()
    agents_total, agents_active = await agents.count()
    counts = data["executions_by_status"]
    engine = ctx.services.get("flow_engine")
    return {
        "timestamp": isoformat(utcnow()),
        **data,
        "flows_total": await flows.count(),
        "agents_total": agents_total,
        "agents_active": agents_active,
        "total_executions": data["executions_total"],
        "successful_executions": counts["completed"],
        "failed_executions": counts["failed"],
        "cancelled_executions": counts["cancelled"],
        "running_executions": counts["running"],
        "engine": {"running_here": engine.running, **engine.counters} if isinstance(engine, Engine) else None,
    }


@router.get("/status", response_model=SpineStatus)
async def status(ctx: AppContext = Depends(get_ctx), _p: Principal = Depends(reader)) -> dict[str, Any]:
    flows, executions, agents = _svc(ctx)
    agents_total, agents_active = await agents.count()
    engine = ctx.services.get("flow_engine")
    running = isinstance(engine, Engine) and engine.started and not engine.stopping
    _, active = await executions.list(status="running", limit=1)
    return {
        "status": "operational",
        "version": __version__,
        "uptime": round(time.time() - _STARTED, 3),
        "timestamp": isoformat(utcnow()),
        "components": {
            "registry": "active",
            "orchestrator": "active" if running else "inactive",
            "memory": "active",
            "communication": "active",
        },
        "agents": {"total": agents_total, "active": agents_active},
        "flows": {"total": await flows.count()},
        "executions": {"running": active},
        "engine": {"id": engine.owner, "running_here": engine.running} if isinstance(engine, Engine) else None,
    }


# ------------------------------------------------------------------ users and keys


@router.get("/api/v1/users/me", response_model=SpineUser)
async def current_user(ctx: AppContext = Depends(get_ctx), principal: Principal = Depends(reader)) -> dict[str, Any]:
    """The caller, mapped from their API key. Portside has no credits: the balance is unlimited."""
    limiter = limiter_of(ctx)
    return {
        "id": principal.owner,
        "email": principal.owner if "@" in principal.owner else "",
        "name": principal.name,
        "organization": None,
        "credits": UNLIMITED_CREDITS,
        "credits_unlimited": True,
        "plan": "self-hosted",
        "rate_limit": round(limiter.rate * 60) if limiter.enabled else 0,
        "key_id": principal.key_id,
        "scopes": sorted(principal.scopes),
    }


class UserKeyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: str = Field(min_length=1, max_length=200)


def _user_keys(keys: list[KeyInfo], user_id: str) -> list[KeyInfo]:
    """The user's active, non-admin keys, newest first."""
    mine = [k for k in keys if k.owner == user_id and not k.revoked and "admin" not in k.scopes]
    return sorted(mine, key=lambda k: k.created_at, reverse=True)


@router.get("/api/v1/user/keys/my-key", response_model=SpineMyKey)
async def my_key(
    user_id: str = Query(min_length=1, max_length=200),
    ctx: AppContext = Depends(get_ctx),
    principal: Principal = Depends(reader),
) -> dict[str, Any]:
    """Whether ``user_id`` has a key (your own, or anyone's with an admin key); only a masked prefix."""
    keys = _user_keys(await ctx.keys.list(principal, owner=user_id), user_id)
    if not keys:
        return {
            "has_api_key": False,
            "api_key": None,
            "message": "No API key generated yet. Call generate to create one.",
        }
    key = keys[0]
    limiter = limiter_of(ctx)
    return {
        "has_api_key": True,
        "api_key": f"{key.prefix}...",
        "key_id": key.id,
        "credits": UNLIMITED_CREDITS,
        "rate_limit": round(limiter.rate * 60) if limiter.enabled else 0,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
    }


@router.post("/api/v1/user/keys/generate", response_model=SpineKeyGenerated)
async def generate_key(
    body: UserKeyRequest, ctx: AppContext = Depends(get_ctx), principal: Principal = Depends(reader)
) -> dict[str, Any]:
    """Create ``user_id``'s key, or rotate it (its older keys are revoked). The secret is shown once.

    This is ``POST /v1/keys`` in AI Spine's shape: the key service applies the same rule (admin
    scope, no scope beyond the caller's), so a ``read`` key gets 403 here as it does natively.
    """
    info, plaintext = await ctx.keys.create(principal, USER_KEY_NAME, list(DEFAULT_SCOPES), body.user_id)
    old = [k for k in _user_keys(await ctx.keys.list(principal), body.user_id) if k.id != info.id]
    for key in old:
        await ctx.keys.revoke(principal, key.id)
    action = "regenerated" if old else "created"
    return {
        "message": f"API key {action} successfully",
        "api_key": plaintext,
        "action": action,
        "key_id": info.id,
    }


@router.delete("/api/v1/user/keys/revoke", response_model=SpineKeyRevoked)
async def revoke_key(
    body: UserKeyRequest, ctx: AppContext = Depends(get_ctx), principal: Principal = Depends(reader)
) -> dict[str, Any]:
    """Revoke every (non-admin) key of ``user_id`` (``DELETE /v1/keys/{id}`` for each: admin scope)."""
    keys = _user_keys(await ctx.keys.list(principal), body.user_id)
    if not keys:
        raise NotFound("No API key found to revoke", code="key_not_found")
    for key in keys:
        await ctx.keys.revoke(principal, key.id)
    return {"message": "API key revoked successfully", "status": "revoked", "revoked": len(keys)}


def install(app: FastAPI, ctx: AppContext) -> None:
    for prefix in PREFIXES:
        ctx.error_renderers.append((prefix, render_error))
    limiter_of(ctx)
    app.include_router(router)
