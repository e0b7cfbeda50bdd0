"""Mounts metrics: ``ctx.services["metrics"]``, ``GET /v1/metrics`` (JSON) and ``GET /metrics/prometheus``.

AI Spine owns the JSON ``GET /metrics``; the Prometheus exposition lives at ``/metrics/prometheus``.
It needs a key with ``read`` unless ``PORTSIDE_METRICS_PUBLIC=true`` (for scrapers without credentials).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from portside.server.api.wire import WireRoute
from portside.server.context import AppContext, get_ctx
from portside.server.deps import current_principal, require
from portside.server.http.errors import render_native
from portside.server.metrics.collector import MetricsCollector, native_metrics
from portside.server.metrics.prometheus import CONTENT_TYPE, render
from portside.server.metrics.schemas import NativeMetrics

router = APIRouter(tags=["metrics"], route_class=WireRoute)


class MetricsSettings(BaseSettings):
    """``PORTSIDE_METRICS_*``."""

    model_config = SettingsConfigDict(env_prefix="PORTSIDE_METRICS_", extra="ignore")

    public: bool = Field(default=False, description="Serve /metrics/prometheus without an API key.")


def collector(ctx: AppContext = Depends(get_ctx)) -> MetricsCollector:
    return ctx.service("metrics", MetricsCollector)


@router.get("/v1/metrics", response_model=NativeMetrics)
async def metrics_json(m: MetricsCollector = Depends(collector), _: Any = Depends(require("read"))) -> Any:
    """Host, process and store figures as JSON."""
    return native_metrics(await m.snapshot())


@router.get("/metrics/prometheus")
async def metrics_prometheus(
    request: Request, m: MetricsCollector = Depends(collector), ctx: AppContext = Depends(get_ctx)
) -> Response:
    """The same figures in the Prometheus text format."""
    settings = ctx.services.get("metrics_settings")
    if not (isinstance(settings, MetricsSettings) and settings.public):
        principal = await current_principal(request, ctx)
        principal.require("read")
    return Response(render(await m.snapshot()), media_type=CONTENT_TYPE)


def install(app: FastAPI, ctx: AppContext) -> None:
    data_dir = ctx.settings.ensure_data_dir()
    metrics = MetricsCollector(ctx.db, data_dir, ctx.services)
    ctx.services["metrics"] = metrics
    ctx.services["metrics_settings"] = MetricsSettings()

    async def start() -> None:
        metrics.prime()

    ctx.on_start.append(start)
    # AI Spine claims the "/metrics" prefix for its error bodies; this path answers in the native shape.
    ctx.error_renderers.append(("/metrics/prometheus", render_native))
    app.include_router(router)
