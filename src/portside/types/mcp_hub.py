"""MCP hub models: registered servers, their tools and resources, tool calls and the call audit log."""

from __future__ import annotations

from typing import Any

from portside.types.common import Model


class McpServer(Model):
    """A registered MCP server and its live state (``env``/``headers`` values are never returned)."""

    id: str
    name: str
    transport: str
    command: str | None = None
    args: list[str] = []
    cwd: str | None = None
    url: str | None = None
    env_keys: list[str] = []
    header_keys: list[str] = []
    timeout_seconds: float = 30.0
    description: str = ""
    desired_state: str = "disconnected"
    status: str
    pid: int | None = None
    connected_at: str | None = None
    last_connected_at: str | None = None
    last_error: str | None = None
    tools_count: int = 0
    resources_count: int = 0
    server_info: dict[str, Any] | None = None
    protocol_version: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class McpTool(Model):
    server_name: str
    name: str
    title: str | None = None
    description: str = ""
    input_schema: dict[str, Any] = {}
    output_schema: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None
    verified: bool = False
    verification_hash: str | None = None


class McpResource(Model):
    server_name: str
    uri: str
    name: str | None = None
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None
    size: int | None = None


class McpCallResult(Model):
    """A tool's answer: MCP content blocks, structured content, and whether the tool reported an error."""

    call_id: str
    server_name: str
    tool: str
    is_error: bool
    content: list[dict[str, Any]] = []
    structured_content: dict[str, Any] | None = None
    duration_ms: float = 0.0

    @property
    def text(self) -> str:
        """The text blocks joined by newlines."""
        return "\n".join(str(b.get("text", "")) for b in self.content if b.get("type") == "text")


class McpCallRecord(Model):
    """One row of the tool-call audit log."""

    call_id: str
    server_id: str
    server_name: str
    tool: str
    owner: str
    key_id: str
    arguments: dict[str, Any] = {}
    outcome: str
    error: str | None = None
    result_preview: str | None = None
    duration_ms: float = 0.0
    request_id: str | None = None
    created_at: str
