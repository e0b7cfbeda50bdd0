"""``portside mcp``: Portside's MCP tools over stdio, as a client of a running Portside server.

The tools reach the server's REST API with ``PORTSIDE_URL`` / ``PORTSIDE_API_KEY`` (the same
services answer as on ``/mcp``). stdout carries the protocol; logs go to stderr.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from portside._config import ClientConfig
    from portside.server.mcp_server.config import MCPSettings

UrlOpt = typer.Option(None, "--url", envvar="PORTSIDE_URL", help="Server URL (default http://127.0.0.1:8321).")
KeyOpt = typer.Option(None, "--api-key", envvar="PORTSIDE_API_KEY", help="API key the tools act as.")


def mcp_command(
    url: str = UrlOpt,
    api_key: str = KeyOpt,
    max_output: int = typer.Option(
        None, "--max-output", help="Longest string in a tool result before truncation (PORTSIDE_MCP_MAX_OUTPUT_CHARS)."
    ),
    log_level: str = typer.Option("WARNING", "--log-level", help="Log level of the stderr log."),
) -> None:
    """Serve the MCP tools over stdio (for Claude Desktop, IDEs and other MCP clients)."""
    import anyio

    from portside._config import ClientConfig
    from portside.cli.common import local_admin_key
    from portside.server.mcp_server.config import MCPSettings

    logging.basicConfig(stream=sys.stderr, level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = ClientConfig.resolve(url, api_key or local_admin_key())
    settings = MCPSettings() if max_output is None else MCPSettings(max_output_chars=max_output)
    anyio.run(serve_stdio, config, settings)


async def serve_stdio(config: ClientConfig, settings: MCPSettings) -> None:
    """Run the MCP server over stdio until the client closes it; then release the session sandbox."""
    from portside.server.mcp_server.backend import Backend
    from portside.server.mcp_server.cache import SandboxCache
    from portside.server.mcp_server.remote import RemoteBackend
    from portside.server.mcp_server.server import build_server
    from portside.server.mcp_server.transports import run_stdio

    backend = RemoteBackend(config)
    cache = SandboxCache(
        settings.sandbox_cache_size, ttl=settings.sandbox_ttl, profile=settings.sandbox_profile, eviction="delete"
    )

    async def resolve(_: object) -> tuple[Backend, str]:
        return backend, "stdio"  # one process, one MCP session

    async def close() -> None:
        try:
            await cache.close()
        finally:
            await backend.aclose()

    await run_stdio(build_server(resolve, cache, max_output_chars=settings.max_output_chars), on_close=close)
