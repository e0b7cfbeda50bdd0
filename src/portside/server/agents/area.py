"""Mounts the agent registry: ``ctx.services["agents"]`` and ``/v1/agents``."""

from __future__ import annotations

from fastapi import FastAPI

from portside.server.agents.service import AgentService
from portside.server.context import AppContext


def install(app: FastAPI, ctx: AppContext) -> None:
    from portside.server.api.v1 import agents as door

    ctx.services.setdefault("agents", AgentService(ctx.db))
    app.include_router(door.router)
