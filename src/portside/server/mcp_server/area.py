"""Area install: the MCP server at ``/mcp`` (streamable HTTP), its tools calling the services directly."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.routing import Route

from portside.server.context import AppContext
from portside.server.mcp_server.backend import Backend, BackendError, ServiceBackend
from portside.server.mcp_server.cache import SandboxCache
from portside.server.mcp_server.config import MCPSettings
from portside.server.mcp_server.server import build_server
from portside.server.mcp_server.transports import AuthenticatedMCP, principal_of, session_id_of
from portside.server.sandboxes.service import SandboxService
from portside.server.skills.service import SkillService

log = logging.getLogger("portside.mcp")

MCP_PATH = "/mcp"
_CLOSE_TIMEOUT = 10.0


@dataclass
class MCPRuntime:
    """What the area keeps in ``ctx.services["mcp"]``."""

    server: Server[Any]
    cache: SandboxCache
    manager: StreamableHTTPSessionManager
    settings: MCPSettings


def install(app: FastAPI, ctx: AppContext) -> None:
    """Mount ``/mcp``; sessions' sandboxes are released when the server stops."""
    settings = MCPSettings()
    cache = SandboxCache(
        settings.sandbox_cache_size,
        ttl=settings.sandbox_ttl,
        profile=settings.sandbox_profile,
        eviction=settings.eviction,
    )

    async def resolve(request_ctx: ServerRequestContext[Any, Any]) -> tuple[Backend, str]:
        principal = principal_of(request_ctx.request)
        if principal is None:
            raise BackendError("unauthorized", "no authenticated caller on this MCP request", 401)
        backend = ServiceBackend(
            ctx.service("sandboxes", SandboxService), ctx.service("skills", SkillService), principal
        )
        # Stateful sessions get their own sandbox; stateless (2026-era) requests share the key's.
        session = session_id_of(request_ctx.request) or "stateless"
        return backend, f"{principal.key_id}:{session}"

    server = build_server(resolve, cache, max_output_chars=settings.max_output_chars)
    manager = StreamableHTTPSessionManager(app=server)
    ctx.services["mcp"] = MCPRuntime(server, cache, manager, settings)
    endpoint = AuthenticatedMCP(ctx.keys.authenticate, manager, auth_enabled=ctx.settings.auth_enabled)
    app.router.routes.append(Route(MCP_PATH, endpoint=endpoint))
    stack = AsyncExitStack()

    async def _start() -> None:
        await stack.enter_async_context(manager.run())

    async def _stop() -> None:
        try:
            await asyncio.wait_for(cache.close(), timeout=_CLOSE_TIMEOUT)
        except Exception:  # keep shutting down
            log.exception("could not release the MCP session sandboxes")
        finally:
            await stack.aclose()

    ctx.on_start.append(_start)
    ctx.on_stop.append(_stop)
