"""Symbiont system routes: ``GET /api/v1/health`` (no key needed) and ``GET /api/v1/metrics``.

(``GET /api/v1/agents/{id}/metrics`` is served by the agents module of this package.)
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from portside import __version__
from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.clock import isoformat, utcnow
from portside.server.context import AppContext, get_ctx
from portside.server.deps import optional_principal
from portside.server.metrics.collector import STARTED, MetricsCollector, system_metrics
from portside.server.metrics.schemas import SymbiontHealth, SystemMetrics
from portside.server.ratelimit import rate_limited

router = APIRouter(tags=["symbiont"], route_class=WireRoute)
Reader = Depends(rate_limited("read"))


@router.get(
    "/health",
    response_model=SymbiontHealth,
    responses={503: {"model": SymbiontHealth, "description": "The database is unreachable."}},
)
async def health_check(
    ctx: AppContext = Depends(get_ctx), caller: Principal | None = Depends(optional_principal)
) -> JSONResponse:
    """``HealthResponse`` (``status``, ``uptime_seconds``, ``timestamp``, ``version``); checks and warnings
    only for key holders."""
    import time

    checks: dict[str, Any] = {}
    checks["database"] = await ctx.db.check()
    ok = bool(checks["database"]["ok"])
    body: dict[str, Any] = {
        "status": "healthy" if ok else "unhealthy",
        "uptime_seconds": int(time.time() - STARTED),
        "timestamp": isoformat(utcnow()),
        "version": __version__,
    }
    if caller is not None:
        body.update(checks=checks, warnings=list(ctx.warnings))
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", response_model=SystemMetrics)
async def get_metrics(ctx: AppContext = Depends(get_ctx), _: Principal = Reader) -> Any:
    """``SystemMetrics``: host memory/CPU/disk, agents, secrets, MCP connections, knowledge items (+ counts)."""
    return system_metrics(await ctx.service("metrics", MetricsCollector).snapshot())
