"""Mounts retention: ``ctx.services["retention"]``, the background purge and ``POST /v1/admin/gc``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

from portside.server.auth import Principal
from portside.server.context import AppContext, get_ctx
from portside.server.deps import require
from portside.server.errors import Conflict
from portside.server.retention.config import RetentionSettings
from portside.server.retention.service import RetentionService
from portside.types.admin import GcReport

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class GcInProgress(Conflict):
    code = "gc_in_progress"


@router.post("/gc", response_model=GcReport)
async def run_gc(ctx: AppContext = Depends(get_ctx), _: Principal = Depends(require("admin"))) -> dict[str, Any]:
    """Purge now everything past its retention; returns rows and bytes purged per kind."""
    report = await ctx.service("retention", RetentionService).run()
    if report.skipped:
        raise GcInProgress("another replica is purging right now; try again later", details={"retry_after": 5})
    return report.as_dict()


def install(app: FastAPI, ctx: AppContext) -> None:
    settings = RetentionSettings()
    service = RetentionService(ctx.db, settings, ctx.services)
    ctx.services["retention"] = service
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        stop.clear()
        if settings.enabled:
            tasks.append(asyncio.create_task(service.run_forever(stop), name="portside-retention"))

    async def halt() -> None:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tasks.clear()

    ctx.on_start.append(start)
    ctx.on_stop.append(halt)
    app.include_router(router)
