"""Response models of the MCP hub (``/v1/mcp-*``): the SDK's :mod:`portside.types.mcp_hub` models, shared."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from portside.server.api.wire import Deleted, WireModel
from portside.types.mcp_hub import McpCallRecord, McpCallResult, McpResource, McpServer, McpTool

__all__ = [
    "McpCallPage",
    "McpCallResult",
    "McpResourceContents",
    "McpResourceList",
    "McpServerDeleted",
    "McpServerList",
    "McpServerOut",
    "McpStderr",
    "McpToolList",
    "SymbiontMcpConnection",
    "SymbiontMcpResource",
    "SymbiontMcpTool",
]


class McpServerOut(McpServer):
    """A registered server and its live state, with the owner that registered it."""

    owner: str


class McpServerList(WireModel):
    items: list[McpServerOut]


class McpServerDeleted(Deleted):
    name: str


class McpStderr(WireModel):
    name: str
    stderr: str


class McpToolList(WireModel):
    items: list[McpTool]


class McpResourceList(WireModel):
    items: list[McpResource]


class McpResourceContents(WireModel):
    """A resource read: MCP ``contents`` blocks (text or base64 blob) as the server sent them."""

    server_name: str
    uri: str
    contents: list[dict[str, Any]]


class McpCallPage(WireModel):
    items: list[McpCallRecord]
    total: int


# ---------------------------------------------------------------- Symbiont door (``/api/v1/mcp``)


class SymbiontMcpConnection(WireModel):
    """``symbiont.McpConnectionInfo`` plus the registration's ``id`` and ``transport``."""

    server_name: str
    status: str
    pid: int | None = None
    connected_at: str | None = None
    last_error: str | None = None
    tools_count: int = 0
    resources_count: int = 0
    id: str
    transport: str


class SymbiontMcpTool(WireModel):
    """``symbiont.McpToolInfo``: the tool's input schema is sent under ``schema``."""

    name: str
    description: str
    server_name: str
    tool_schema: dict[str, Any] = Field(alias="schema")
    verified: bool = False
    verification_hash: str | None = None


class SymbiontMcpResource(WireModel):
    """``symbiont.McpResourceInfo``."""

    uri: str
    name: str | None = None
    description: str | None = None
    mime_type: str | None = None
    server_name: str
