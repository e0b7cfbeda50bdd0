"""Mounts the MCP hub: ``ctx.services["mcp_hub"]`` and the ``/v1/mcp-...`` routes."""

from __future__ import annotations

from fastapi import FastAPI

from portside.server.context import AppContext
from portside.server.mcp_hub.service import McpHubService
from portside.server.secrets.service import cipher_of


def install(app: FastAPI, ctx: AppContext) -> None:
    from portside.server.api.v1 import mcp_hub as door

    data_dir = ctx.settings.ensure_data_dir()
    service = McpHubService(ctx.db, cipher_of(ctx.services, ctx.settings.secret_key, data_dir), data_dir)
    ctx.services["mcp_hub"] = service
    ctx.on_start.append(service.start)
    ctx.on_stop.append(service.stop)
    app.include_router(door.router)
