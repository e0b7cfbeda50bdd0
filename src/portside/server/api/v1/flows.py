"""Flow definitions: ``/v1/flows``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.context import AppContext, get_ctx
from portside.server.deps import require
from portside.server.errors import InvalidInput
from portside.server.flows.loader import load_directory
from portside.server.flows.schemas import (
    ExecutionOut,
    FlowDeleted,
    FlowList,
    FlowOut,
    FlowReload,
    FlowValidation,
    FlowVersionList,
)
from portside.server.flows.serialize import execution_dict, flow_dict, flow_version_dict
from portside.server.flows.service import ExecutionService, FlowService

router = APIRouter(prefix="/v1/flows", tags=["flows"], route_class=WireRoute)


def _flows(ctx: AppContext) -> FlowService:
    return ctx.service("flows", FlowService)


def _executions(ctx: AppContext) -> ExecutionService:
    return ctx.service("executions", ExecutionService)


class ExecuteBody(BaseModel):
    """Start an execution of a flow."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    input: dict[str, Any] = Field(default_factory=dict, alias="input_data")
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int | None = Field(default=None, ge=1, description="Flow revision; default the current one.")
    timeout_seconds: float | None = Field(default=None, gt=0, le=7 * 86_400)


@router.post("", status_code=201, response_model=FlowOut)
async def create_flow(
    definition: dict[str, Any] = Body(...),
    ctx: AppContext = Depends(get_ctx),
    principal: Principal = Depends(require("write")),
) -> dict[str, Any]:
    """Save a new flow (409 if the id exists). Invalid DAGs are rejected with every problem in details."""
    view, _ = await _flows(ctx).save(definition, created_by=principal.owner, mode="create")
    return flow_dict(view)


@router.post("/validate", response_model=FlowValidation)
async def validate_flow(
    definition: dict[str, Any] = Body(...),
    ctx: AppContext = Depends(get_ctx),
    _: Principal = Depends(require("read")),
) -> dict[str, Any]:
    """Check a definition without saving it."""
    flow = await _flows(ctx).validate(definition)
    return {"valid": True, "flow_id": flow.flow_id, "nodes": len(flow.nodes)}


@router.post("/reload", response_model=FlowReload)
async def reload_flows(ctx: AppContext = Depends(get_ctx), _: Principal = Depends(require("admin"))) -> dict[str, Any]:
    """Load the server's flows directory again (new or changed files become new versions)."""
    directory = ctx.services.get("flows_dir")
    if not isinstance(directory, Path):
        raise InvalidInput("no flows directory configured")
    agents = ctx.services["agents"]
    report = await load_directory(directory, _flows(ctx), agents)
    return {"directory": str(directory), **asdict(report)}


@router.get("", response_model=FlowList)
async def list_flows(ctx: AppContext = Depends(get_ctx), _: Principal = Depends(require("read"))) -> dict[str, Any]:
    flows = await _flows(ctx).list()
    return {"items": [flow_dict(f) for f in flows], "total": len(flows)}


@router.get("/{flow_id}", response_model=FlowOut)
async def get_flow(
    flow_id: str,
    version: int | None = Query(default=None, ge=1, description="Revision; default the current one."),
    ctx: AppContext = Depends(get_ctx),
    _: Principal = Depends(require("read")),
) -> dict[str, Any]:
    return flow_dict(await _flows(ctx).get(flow_id, version))


@router.put(
    "/{flow_id}",
    response_model=FlowOut,
    responses={201: {"model": FlowOut, "description": "Created (first revision)."}},
)
async def put_flow(
    flow_id: str,
    definition: dict[str, Any] = Body(...),
    ctx: AppContext = Depends(get_ctx),
    principal: Principal = Depends(require("write")),
) -> JSONResponse:
    """Create the flow or save a new version of it (an unchanged definition makes no new version)."""
    body_id = definition.setdefault("flow_id", flow_id)
    if body_id != flow_id:
        raise InvalidInput("flow_id in the body differs from the path", details={"path": flow_id, "body": body_id})
    view, changed = await _flows(ctx).save(definition, created_by=principal.owner, mode="upsert")
    status = 201 if changed and view.revision == 1 else 200
    return JSONResponse({**flow_dict(view), "changed": changed}, status_code=status)


@router.get("/{flow_id}/versions", response_model=FlowVersionList)
async def flow_versions(
    flow_id: str, ctx: AppContext = Depends(get_ctx), _: Principal = Depends(require("read"))
) -> dict[str, Any]:
    versions = await _flows(ctx).versions(flow_id)
    return {"items": [flow_version_dict(v) for v in versions], "total": len(versions)}


@router.delete("/{flow_id}", response_model=FlowDeleted)
async def delete_flow(
    flow_id: str, ctx: AppContext = Depends(get_ctx), _: Principal = Depends(require("write"))
) -> dict[str, Any]:
    await _flows(ctx).delete(flow_id)
    return {"flow_id": flow_id, "deleted": True}


@router.post("/{flow_id}/executions", status_code=202, response_model=ExecutionOut)
async def execute_flow(
    flow_id: str,
    body: ExecuteBody | None = None,
    ctx: AppContext = Depends(get_ctx),
    principal: Principal = Depends(require("write")),
) -> dict[str, Any]:
    """Start an execution; returns at once with status ``pending``."""
    body = body or ExecuteBody()
    view = await _executions(ctx).start(
        flow_id,
        body.input,
        owner=principal.owner,
        metadata=body.metadata,
        version=body.version,
        timeout_seconds=body.timeout_seconds,
    )
    return execution_dict(view)
