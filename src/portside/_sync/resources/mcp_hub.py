# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""``client.mcp``: the MCP hub — register MCP servers, connect them, list their tools, call tools."""

from __future__ import annotations

import builtins
from typing import Any

from portside._sync._http import HTTP
from portside.types.mcp_hub import McpCallRecord, McpCallResult, McpResource, McpServer, McpTool

_BASE = "/v1/mcp-servers"
_CALL_SLACK = 30.0  # seconds of HTTP timeout beyond a call's own timeout


class McpHub:
    """MCP servers Portside connects to as a client (stdio command, or streamable HTTP / SSE URL)."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def add(
        self,
        name: str,
        *,
        command: str | builtins.list[str] | None = None,
        args: builtins.list[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        url: str | None = None,
        headers: dict[str, str] | None = None,
        transport: str | None = None,
        timeout_seconds: float = 30.0,
        description: str = "",
        connect: bool = False,
    ) -> McpServer:
        """Register a server (admin): ``command`` (+ ``args``) for stdio, or ``url`` (+ ``headers``)."""
        body: dict[str, Any] = {
            "name": name,
            "command": command,
            "args": args or [],
            "env": env or {},
            "cwd": cwd,
            "url": url,
            "headers": headers or {},
            "timeout_seconds": timeout_seconds,
            "description": description,
            "connect": connect,
        }
        if transport is not None:
            body["transport"] = transport
        return McpServer.model_validate(self._http.json("POST", _BASE, json=body))

    def list(self) -> builtins.list[McpServer]:
        data = self._http.json("GET", _BASE)
        return [McpServer.model_validate(s) for s in data["items"]]

    def get(self, name: str) -> McpServer:
        return McpServer.model_validate(self._http.json("GET", f"{_BASE}/{name}"))

    def update(self, name: str, **changes: Any) -> McpServer:
        """Change a registration (admin); a connected server is reconnected."""
        return McpServer.model_validate(self._http.json("PATCH", f"{_BASE}/{name}", json=changes))

    def delete(self, name: str) -> None:
        self._http.json("DELETE", f"{_BASE}/{name}")

    def connect(self, name: str) -> McpServer:
        """Connect (or reconnect after a crash); raises with the reason when the server cannot be reached."""
        return McpServer.model_validate(self._http.json("POST", f"{_BASE}/{name}/connect"))

    def disconnect(self, name: str) -> McpServer:
        return McpServer.model_validate(self._http.json("POST", f"{_BASE}/{name}/disconnect"))

    def tools(self, server: str | None = None, *, refresh: bool = False) -> builtins.list[McpTool]:
        """Tools of one server, or of every connected server."""
        params = {"server": server, "refresh": refresh or None}
        data = self._http.json("GET", "/v1/mcp-tools", params=params)
        return [McpTool.model_validate(t) for t in data["items"]]

    def resources(self, server: str | None = None, *, refresh: bool = False) -> builtins.list[McpResource]:
        params = {"server": server, "refresh": refresh or None}
        data = self._http.json("GET", "/v1/mcp-resources", params=params)
        return [McpResource.model_validate(r) for r in data["items"]]

    def read_resource(self, server: str, uri: str) -> dict[str, Any]:
        data: dict[str, Any] = self._http.json("POST", f"{_BASE}/{server}/resources/read", json={"uri": uri})
        return data

    def call(
        self, server: str, tool: str, arguments: dict[str, Any] | None = None, *, timeout_seconds: float | None = None
    ) -> McpCallResult:
        """Call a tool through Portside (audited). A tool error comes back with ``is_error=True``."""
        body = {"tool": tool, "arguments": arguments or {}, "timeout_seconds": timeout_seconds}
        http_timeout = (timeout_seconds + _CALL_SLACK) if timeout_seconds else None
        data = self._http.json("POST", f"{_BASE}/{server}/call", json=body, timeout=http_timeout)
        return McpCallResult.model_validate(data)

    def calls(
        self, server: str | None = None, *, limit: int = 50, offset: int = 0
    ) -> builtins.list[McpCallRecord]:
        """The tool-call audit log, newest first."""
        params = {"server": server, "limit": limit, "offset": offset}
        data = self._http.json("GET", "/v1/mcp-calls", params=params)
        return [McpCallRecord.model_validate(c) for c in data["items"]]
