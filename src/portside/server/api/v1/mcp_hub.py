"""The MCP hub over the native API: ``/v1/mcp-servers``, ``/v1/mcp-tools``, ``/v1/mcp-resources``, ``/v1/mcp-calls``.

Registering, changing and deleting servers needs ``admin`` (a stdio server is a command run on the
host); connecting, disconnecting and calling tools need ``write``; reading needs ``read``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from portside.server.api.params import MAX_OFFSET
from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.clock import isoformat
from portside.server.context import AppContext, get_ctx
from portside.server.deps import require
from portside.server.logs import request_id_var
from portside.server.mcp_hub.models import McpToolCallRow
from portside.server.mcp_hub.schemas import (
    McpCallPage,
    McpCallResult,
    McpResourceContents,
    McpResourceList,
    McpServerDeleted,
    McpServerList,
    McpServerOut,
    McpStderr,
    McpToolList,
)
from portside.server.mcp_hub.service import CallOutcome, McpHubService, ResourceInfo, ServerView, ToolInfo
from portside.server.mcp_hub.spec import ServerPatch, ServerSpec, ToolCall

router = APIRouter(prefix="/v1", tags=["mcp hub"], route_class=WireRoute)
Reader = Depends(require("read"))
Writer = Depends(require("write"))
Admin = Depends(require("admin"))


def hub(ctx: AppContext = Depends(get_ctx)) -> McpHubService:
    return ctx.service("mcp_hub", McpHubService)


def server_view(v: ServerView) -> dict[str, Any]:
    """A server: its registration (never ``env``/``headers`` values, only their names) and live state."""
    row = v.row
    return {
        "id": row.id,
        "name": row.name,
        "transport": row.transport,
        "command": row.command,
        "args": list(row.args or []),
        "cwd": row.cwd,
        "url": row.url,
        "env_keys": list(row.env_keys or []),
        "header_keys": list(row.header_keys or []),
        "timeout_seconds": row.timeout_seconds,
        "description": row.description,
        "desired_state": row.desired_state,
        "status": v.status,
        "pid": v.pid,
        "connected_at": isoformat(v.connected_at) if v.connected_at else None,
        "last_connected_at": isoformat(row.last_connected_at) if row.last_connected_at else None,
        "last_error": v.last_error,
        "tools_count": v.tools_count,
        "resources_count": v.resources_count,
        "server_info": v.server_info,
        "protocol_version": v.protocol_version,
        "owner": row.owner,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
    }


def tool_view(t: ToolInfo) -> dict[str, Any]:
    return {
        "server_name": t.server_name,
        "name": t.tool.name,
        "title": t.tool.title,
        "description": t.tool.description or "",
        "input_schema": t.tool.input_schema,
        "output_schema": t.tool.output_schema,
        "annotations": t.tool.annotations.model_dump(mode="json", exclude_none=True) if t.tool.annotations else None,
        "verified": t.verified,
        "verification_hash": t.verification_hash,
    }


def resource_view(r: ResourceInfo) -> dict[str, Any]:
    return {
        "server_name": r.server_name,
        "uri": str(r.resource.uri),
        "name": r.resource.name,
        "title": r.resource.title,
        "description": r.resource.description,
        "mime_type": r.resource.mime_type,
        "size": r.resource.size,
    }


def call_view(c: CallOutcome) -> dict[str, Any]:
    result = c.result
    return {
        "call_id": c.call_id,
        "server_name": c.server_name,
        "tool": c.tool,
        "is_error": bool(result.is_error),
        "content": [b.model_dump(mode="json", by_alias=True, exclude_none=True) for b in result.content],
        "structured_content": result.structured_content,
        "duration_ms": c.duration_ms,
    }


def audit_view(row: McpToolCallRow) -> dict[str, Any]:
    return {
        "call_id": row.id,
        "server_id": row.server_id,
        "server_name": row.server_name,
        "tool": row.tool,
        "owner": row.owner,
        "key_id": row.key_id,
        "arguments": row.arguments,
        "outcome": row.outcome,
        "error": row.error,
        "result_preview": row.result_preview,
        "duration_ms": row.duration_ms,
        "request_id": row.request_id,
        "created_at": isoformat(row.created_at),
    }


class NamedToolCall(ToolCall):
    """``POST /v1/mcp-servers/{name}/call``: the tool named in the body (for names a path cannot hold)."""

    tool: str = Field(min_length=1, max_length=300)


class ResourceRead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: str = Field(min_length=1, max_length=4000)


@router.post("/mcp-servers", status_code=201, response_model=McpServerOut)
async def create_server(body: ServerSpec, h: McpHubService = Depends(hub), caller: Principal = Admin) -> Any:
    return server_view(await h.create(caller, body))


@router.get("/mcp-servers", response_model=McpServerList)
async def list_servers(h: McpHubService = Depends(hub), _: Principal = Reader) -> Any:
    return {"items": [server_view(v) for v in await h.list()]}


@router.get("/mcp-servers/{name}", response_model=McpServerOut)
async def get_server(name: str, h: McpHubService = Depends(hub), _: Principal = Reader) -> Any:
    return server_view(await h.get(name))


@router.patch("/mcp-servers/{name}", response_model=McpServerOut)
async def update_server(
    name: str, body: ServerPatch, h: McpHubService = Depends(hub), caller: Principal = Admin
) -> Any:
    return server_view(await h.update(caller, name, body))


@router.delete("/mcp-servers/{name}", response_model=McpServerDeleted)
async def delete_server(name: str, h: McpHubService = Depends(hub), caller: Principal = Admin) -> Any:
    await h.delete(caller, name)
    return {"name": name, "deleted": True}


@router.get("/mcp-servers/{name}/stderr", response_model=McpStderr)
async def server_stderr(name: str, h: McpHubService = Depends(hub), _: Principal = Admin) -> Any:
    """The tail of a stdio server's stderr in this process (the last 2000 characters)."""
    return {"name": name, "stderr": await h.stderr_tail(name)}


@router.post("/mcp-servers/{name}/connect", response_model=McpServerOut)
async def connect_server(name: str, h: McpHubService = Depends(hub), caller: Principal = Writer) -> Any:
    return server_view(await h.connect(caller, name))


@router.post("/mcp-servers/{name}/disconnect", response_model=McpServerOut)
async def disconnect_server(name: str, h: McpHubService = Depends(hub), caller: Principal = Writer) -> Any:
    return server_view(await h.disconnect(caller, name))


@router.get("/mcp-servers/{name}/tools", response_model=McpToolList)
async def server_tools(name: str, refresh: bool = False, h: McpHubService = Depends(hub), _: Principal = Reader) -> Any:
    return {"items": [tool_view(t) for t in await h.tools(name, refresh=refresh)]}


@router.get("/mcp-servers/{name}/resources", response_model=McpResourceList)
async def server_resources(
    name: str, refresh: bool = False, h: McpHubService = Depends(hub), _: Principal = Reader
) -> Any:
    return {"items": [resource_view(r) for r in await h.resources(name, refresh=refresh)]}


@router.post("/mcp-servers/{name}/resources/read", response_model=McpResourceContents)
async def read_resource(
    name: str, body: ResourceRead, h: McpHubService = Depends(hub), caller: Principal = Writer
) -> Any:
    result = await h.read_resource(caller, name, body.uri)
    return {
        "server_name": name,
        "uri": body.uri,
        "contents": [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in result.contents],
    }


@router.post("/mcp-servers/{name}/tools/{tool}/call", response_model=McpCallResult)
async def call_tool(
    name: str, tool: str, body: ToolCall, h: McpHubService = Depends(hub), caller: Principal = Writer
) -> Any:
    outcome = await h.call_tool(
        caller, name, tool, body.arguments, timeout=body.timeout_seconds, request_id=request_id_var.get()
    )
    return call_view(outcome)


@router.post("/mcp-servers/{name}/call", response_model=McpCallResult)
async def call_named_tool(
    name: str, body: NamedToolCall, h: McpHubService = Depends(hub), caller: Principal = Writer
) -> Any:
    outcome = await h.call_tool(
        caller, name, body.tool, body.arguments, timeout=body.timeout_seconds, request_id=request_id_var.get()
    )
    return call_view(outcome)


@router.get("/mcp-servers/{name}/calls", response_model=McpCallPage)
async def server_calls(
    name: str,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    h: McpHubService = Depends(hub),
    caller: Principal = Reader,
) -> Any:
    await h.get(name)
    rows, total = await h.calls(caller, server=name, limit=limit, offset=offset)
    return {"items": [audit_view(r) for r in rows], "total": total}


@router.get("/mcp-tools", response_model=McpToolList)
async def all_tools(
    server: str | None = None, refresh: bool = False, h: McpHubService = Depends(hub), _: Principal = Reader
) -> Any:
    return {"items": [tool_view(t) for t in await h.tools(server, refresh=refresh)]}


@router.get("/mcp-resources", response_model=McpResourceList)
async def all_resources(
    server: str | None = None, refresh: bool = False, h: McpHubService = Depends(hub), _: Principal = Reader
) -> Any:
    return {"items": [resource_view(r) for r in await h.resources(server, refresh=refresh)]}


@router.get("/mcp-calls", response_model=McpCallPage)
async def all_calls(
    server: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    h: McpHubService = Depends(hub),
    caller: Principal = Reader,
) -> Any:
    rows, total = await h.calls(caller, server=server, limit=limit, offset=offset)
    return {"items": [audit_view(r) for r in rows], "total": total}
