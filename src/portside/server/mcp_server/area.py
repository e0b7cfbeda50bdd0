"""Area install: the MCP server at ``/mcp`` (streamable HTTP), its tools calling the services directly."""

from __future__ import annotations

import asyncio
import logging
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
    """What the area keeps in ``ctx.services["mcp_server"]``."""

    server: Server[Any]
    cache: SandboxCache
    manager: StreamableHTTPSessionManager
    settings: MCPSettings


class _ManagerTask:
    """Runs the session manager in a task of its own.

    Its anyio task group must be entered and left in one task; the start and stop hooks may run in
    different tasks (e.g. under test fixtures).
    """

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self.manager = manager
        self._started = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with self.manager.run():
            self._started.set()
            await self._stopping.wait()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="portside-mcp-sessions")
        started = asyncio.create_task(self._started.wait())
        await asyncio.wait({self._task, started}, return_when=asyncio.FIRST_COMPLETED)
        if not self._started.is_set():
            started.cancel()
            await self._task  # re-raises why the manager could not start

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(self._task, timeout=_CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("MCP session manager did not stop in time")


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
    ctx.services["mcp_server"] = MCPRuntime(server, cache, manager, settings)
    endpoint = AuthenticatedMCP(ctx.keys.authenticate, manager, auth_enabled=ctx.settings.auth_enabled)
    app.router.routes.append(Route(MCP_PATH, endpoint=endpoint))
    runner = _ManagerTask(manager)

    async def _start() -> None:
        await runner.start()

    async def _stop() -> None:
        try:
            await asyncio.wait_for(cache.close(), timeout=_CLOSE_TIMEOUT)
        except Exception:  # keep shutting down
            log.exception("could not release the MCP session sandboxes")
        finally:
            await runner.stop()

    ctx.on_start.append(_start)
    ctx.on_stop.append(_stop)
