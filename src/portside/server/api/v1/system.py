"""Liveness and readiness: ``GET /v1/health`` and ``GET /v1/ready``.

Both answer without a key, but then say only up or down (``status``): versions, uptime, warnings
and the checks (store, migrations, sandbox driver, engine) are shown to key holders only.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse

from portside import __version__
from portside.server.auth import Principal
from portside.server.context import AppContext, get_ctx
from portside.server.deps import optional_principal
from portside.types.common import Health, Readiness

router = APIRouter(prefix="/v1", tags=["system"])
_STARTED = time.time()


@router.get("/health", response_model=Health, response_model_exclude_unset=True)
async def health(
    ctx: AppContext = Depends(get_ctx), caller: Principal | None = Depends(optional_principal)
) -> dict[str, Any]:
    """Liveness: the process serves requests. Lists configuration warnings (to key holders)."""
    if caller is None:
        return {"status": "ok"}
    return {
        "status": "ok",
        "version": __version__,
        "uptime_seconds": round(time.time() - _STARTED, 3),
        "warnings": list(ctx.warnings),
    }


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready (the store or its migrations are not current)."}},
)
async def ready(
    ctx: AppContext = Depends(get_ctx), caller: Principal | None = Depends(optional_principal)
) -> JSONResponse:
    """Readiness: the store answers and its migrations are current."""
    checks: dict[str, Any] = {}
    checks["database"] = await ctx.db.check()
    ok = bool(checks["database"]["ok"])
    if ok:
        current, heads = await ctx.db.migration_state()
        migrations_ok = current == heads
        ok = ok and migrations_ok
        checks["migrations"] = {"ok": migrations_ok, "current": sorted(current), "heads": sorted(heads)}
    checks.update(ctx.readiness)
    body: dict[str, Any] = {"status": "ready" if ok else "not_ready"}
    if caller is not None:
        body["checks"] = checks
    return JSONResponse(body, status_code=200 if ok else 503)


def install(app: FastAPI, ctx: AppContext) -> None:
    app.include_router(router)
