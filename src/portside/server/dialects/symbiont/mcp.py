"""Symbiont MCP management: ``/api/v1/mcp/servers...``, ``/api/v1/mcp/tools``, ``/api/v1/mcp/resources``.

The SDK's ``McpServerConfig`` is a stdio server (``command`` is a list: program then arguments).
Lists are bare arrays; tools carry their input schema under ``schema``. A failed connect is a 502
(``APIError``), with the reason kept in the server's ``last_error``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.clock import isoformat
from portside.server.context import AppContext, get_ctx
from portside.server.errors import InvalidInput
from portside.server.mcp_hub.schemas import SymbiontMcpConnection, SymbiontMcpResource, SymbiontMcpTool
from portside.server.mcp_hub.service import McpHubService, ResourceInfo, ServerView, ToolInfo
from portside.server.mcp_hub.spec import ENV_DOC, NAME_PATTERN, ServerSpec
from portside.server.ratelimit import rate_limited

router = APIRouter(tags=["symbiont"], route_class=WireRoute)
Reader = Depends(rate_limited("read"))
Writer = Depends(rate_limited("write"))
Admin = Depends(rate_limited("admin"))


def hub(ctx: AppContext = Depends(get_ctx)) -> McpHubService:
    return ctx.service("mcp_hub", McpHubService)


class McpServerConfig(BaseModel):
    """``symbiont.McpServerConfig``."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=100, json_schema_extra={"pattern": NAME_PATTERN})
    command: list[str] = Field(min_length=1, max_length=200)
    env: dict[str, str] = Field(default_factory=dict, json_schema_extra=ENV_DOC)
    cwd: str | None = Field(default=None, max_length=2000)
    timeout_seconds: int = Field(default=30, gt=0, le=600)


def connection_info(v: ServerView) -> dict[str, Any]:
    """``McpConnectionInfo`` (plus the registration's id and transport)."""
    return {
        "server_name": v.row.name,
        "status": v.status,
        "pid": v.pid,
        "connected_at": isoformat(v.connected_at) if v.connected_at else None,
        "last_error": v.last_error,
        "tools_count": v.tools_count,
        "resources_count": v.resources_count,
        "id": v.row.id,
        "transport": v.row.transport,
    }


def tool_info(t: ToolInfo) -> dict[str, Any]:
    """``McpToolInfo``: the input schema under ``schema``."""
    return {
        "name": t.tool.name,
        "description": t.tool.description or "",
        "server_name": t.server_name,
        "schema": t.tool.input_schema,
        "verified": t.verified,
        "verification_hash": t.verification_hash,
    }


def resource_info(r: ResourceInfo) -> dict[str, Any]:
    return {
        "uri": str(r.resource.uri),
        "name": r.resource.name,
        "description": r.resource.description,
        "mime_type": r.resource.mime_type,
        "server_name": r.server_name,
    }


@router.post("/mcp/servers", response_model=SymbiontMcpConnection)
async def add_mcp_server(body: McpServerConfig, h: McpHubService = Depends(hub), caller: Principal = Admin) -> Any:
    try:
        spec = ServerSpec(
            name=body.name,
            transport="stdio",
            command=body.command[0],
            args=body.command[1:],
            env=body.env,
            cwd=body.cwd,
            timeout_seconds=float(body.timeout_seconds),
        )
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid MCP server config"}
        raise InvalidInput(str(first.get("msg")), code="invalid_mcp_server") from None
    return connection_info(await h.create(caller, spec))


@router.get("/mcp/servers", response_model=list[SymbiontMcpConnection])
async def list_mcp_servers(h: McpHubService = Depends(hub), _: Principal = Reader) -> list[dict[str, Any]]:
    return [connection_info(v) for v in await h.list()]


@router.get("/mcp/servers/{server_name}", response_model=SymbiontMcpConnection)
async def get_mcp_server(server_name: str, h: McpHubService = Depends(hub), _: Principal = Reader) -> Any:
    return connection_info(await h.get(server_name))


@router.post("/mcp/servers/{server_name}/connect", response_model=SymbiontMcpConnection)
async def connect_mcp_server(server_name: str, h: McpHubService = Depends(hub), caller: Principal = Writer) -> Any:
    return connection_info(await h.connect(caller, server_name))


@router.post("/mcp/servers/{server_name}/disconnect", response_model=SymbiontMcpConnection)
async def disconnect_mcp_server(server_name: str, h: McpHubService = Depends(hub), caller: Principal = Writer) -> Any:
    return connection_info(await h.disconnect(caller, server_name))


@router.get("/mcp/tools", response_model=list[SymbiontMcpTool])
async def list_mcp_tools(
    server: str | None = None, h: McpHubService = Depends(hub), _: Principal = Reader
) -> list[dict[str, Any]]:
    return [tool_info(t) for t in await h.tools(server or None)]


@router.get("/mcp/resources", response_model=list[SymbiontMcpResource])
async def list_mcp_resources(
    server: str | None = None, h: McpHubService = Depends(hub), _: Principal = Reader
) -> list[dict[str, Any]]:
    return [resource_info(r) for r in await h.resources(server or None)]
