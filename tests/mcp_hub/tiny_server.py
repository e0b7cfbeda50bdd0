"""A tiny stdio MCP server for the hub tests, written with the official ``mcp`` package (``MCPServer``,
the 2.x name of FastMCP). Run: ``python tiny_server.py``."""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("tiny", instructions="Test server for the Portside MCP hub.")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def whoami() -> dict[str, object]:
    """The server's pid and its GREETING environment variable."""
    return {"pid": os.getpid(), "greeting": os.environ.get("GREETING", "")}


@server.tool()
def fail(message: str) -> str:
    """Always fails with ``message``."""
    raise ToolError(message)


@server.resource("memo://greeting", name="greeting", description="A greeting", mime_type="text/plain")
def greeting() -> str:
    return os.environ.get("GREETING", "hello")


if __name__ == "__main__":
    print("tiny MCP server ready", file=sys.stderr)
    server.run("stdio")
