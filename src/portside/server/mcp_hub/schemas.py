"""Response models of the MCP hub (``/v1/mcp-*``): the SDK's :mod:`portside.types.mcp_hub` models, shared."""

from __future__ import annotations

from typing import Any

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
