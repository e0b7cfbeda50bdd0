"""Flow executions: ``/v1/executions`` (start, read, long-poll, SSE, cancel)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from portside.server.api.params import MAX_OFFSET
from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.context import AppContext, get_ctx
from portside.server.deps import require
from portside.server.flows.schemas import ExecutionOut, FlowExecutionList
from portside.server.flows.serialize import execution_dict
from portside.server.flows.service import ExecutionService

router = APIRouter(prefix="/v1/executions", tags=["executions"], route_class=WireRoute)
MAX_WAIT_SECONDS = 60.0


def _svc(ctx: AppContext) -> ExecutionService:
    return ctx.service("executions", ExecutionService)


def visible_owner(principal: Principal) -> str | None:
    """Admins see every execution; other keys only their owner's."""
    return None if principal.has("admin") else principal.owner


class StartBody(BaseModel):
    """Start an execution of ``flow_id``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    flow_id: str = Field(min_length=1, max_length=100)
    input: dict[str, Any] = Field(default_factory=dict, alias="input_data")
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int | None = Field(default=None, ge=1)
    timeout_seconds: float | None = Field(default=None, gt=0, le=7 * 86_400)


@router.post("", status_code=202, response_model=ExecutionOut)
async def start_execution(
    body: StartBody, ctx: AppContext = Depends(get_ctx), principal: Principal = Depends(require("write"))
) -> dict[str, Any]:
    """Start an execution; returns at once with status ``pending``."""
    view = await _svc(ctx).start(
        body.flow_id,
        body.input,
        owner=principal.owner,
        metadata=body.metadata,
        version=body.version,
        timeout_seconds=body.timeout_seconds,
    )
    return execution_dict(view)


@router.get("", response_model=FlowExecutionList)
async def list_executions(
    flow_id: str | None = Query(default=None, max_length=100),
    status: str | None = Query(default=None, max_length=16),
    limit: int = Query(default=20, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
    ctx: AppContext = Depends(get_ctx),
    principal: Principal = Depends(require("read")),
) -> dict[str, Any]:
    items, total = await _svc(ctx).list(
        owner=visible_owner(principal), flow_id=flow_id, status=status, limit=limit, offset=offset
    )
    return {"items": [execution_dict(v, nodes=False) for v in items], "total": total, "limit": limit, "offset": offset}


@router.get("/{execution_id}", response_model=ExecutionOut)
async def get_execution(
    execution_id: str, ctx: AppContext = Depends(get_ctx), principal: Principal = Depends(require("read"))
) -> dict[str, Any]:
    """An execution with per-node status, outputs, timings, errors and attempts."""
    return execution_dict(await _svc(ctx).get(execution_id, owner=visible_owner(principal)))


@router.get("/{execution_id}/wait", response_model=ExecutionOut)
async def wait_execution(
    execution_id: str,
    timeout: float = Query(default=30.0, ge=0, le=MAX_WAIT_SECONDS),
    ctx: AppContext = Depends(get_ctx),
    principal: Principal = Depends(require("read")),
) -> dict[str, Any]:
    """Long-poll: answers as soon as the execution finishes, or after ``timeout`` seconds with its state."""
    view = await _svc(ctx).wait(execution_id, owner=visible_owner(principal), timeout=timeout)
    return execution_dict(view)


@router.get("/{execution_id}/events")
async def execution_events(
    execution_id: str, ctx: AppContext = Depends(get_ctx), principal: Principal = Depends(require("read"))
) -> EventSourceResponse:
    """Server-sent events: ``node`` and ``execution`` changes, ending when the execution finishes."""
    svc = _svc(ctx)
    owner = visible_owner(principal)
    await svc.get(execution_id, owner=owner, with_nodes=False)  # 404 before the stream starts

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async for name, data in svc.events(execution_id, owner=owner):
            if name != "ping":  # keep-alive comments come from sse-starlette
                yield ServerSentEvent(json.dumps(data, default=str), event=name, sep="\n")

    return EventSourceResponse(
        stream(), headers={"Cache-Control": "no-cache"}, ping=15, ping_message_factory=_ping, sep="\n"
    )


def _ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping", sep="\n")


@router.post("/{execution_id}/cancel", response_model=ExecutionOut)
async def cancel_execution(
    execution_id: str, ctx: AppContext = Depends(get_ctx), principal: Principal = Depends(require("write"))
) -> dict[str, Any]:
    """Cancel: running nodes are interrupted (HTTP calls aborted, worker tasks cancelled)."""
    view = await _svc(ctx).cancel(execution_id, owner=visible_owner(principal))
    return execution_dict(view)
