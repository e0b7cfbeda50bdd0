"""The application factory."""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from portside import __version__
from portside.server import tracing
from portside.server.api.params import single_query_values
from portside.server.areas import AREAS
from portside.server.auth import KeyService
from portside.server.context import AppContext
from portside.server.http.body import BodyLimitMiddleware, StrictJsonMiddleware
from portside.server.http.errors import install_error_handlers
from portside.server.http.middleware import IdempotencyMiddleware, RequestIdMiddleware
from portside.server.http.openapi import install_docs, install_openapi, operation_id
from portside.server.http.throttle import ThrottleMiddleware
from portside.server.logs import configure_logging
from portside.server.settings import Settings
from portside.server.store import Database

log = logging.getLogger("portside.server")


def create_app(settings: Settings | None = None, *, configure_logs: bool = False) -> FastAPI:
    """Build a Portside server app. Nothing touches the store until the lifespan starts."""
    settings = settings or Settings()
    if configure_logs:
        configure_logging(settings.log_level, log_format=settings.log_format, json_lines=settings.log_json)
    data_dir = settings.ensure_data_dir()
    db = Database(settings.resolved_database_url)
    ctx = AppContext(settings=settings, db=db, keys=KeyService(db))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await db.migrate()
        status = await ctx.keys.ensure_admin_key(data_dir, settings.api_key)
        app.state.admin_key_status = status
        app.state.admin_key = status.plaintext
        started = []
        try:
            for hook in ctx.on_start:
                await hook()
                started.append(hook)
            yield
        finally:
            for hook in reversed(ctx.on_stop):
                try:
                    await hook()
                except Exception:  # pragma: no cover - keep shutting down
                    log.exception("error while stopping")
            await db.dispose()

    app = FastAPI(
        title="Portside",
        version=__version__,
        description="Self-hosted runtime for AI agents.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        generate_unique_id_function=operation_id,
        dependencies=[Depends(single_query_values)],
    )
    app.state.ctx = ctx
    app.state.admin_key = None
    app.state.admin_key_status = None
    install_error_handlers(app)
    for name in AREAS:
        importlib.import_module(name).install(app, ctx)
    install_openapi(app, ctx)
    install_docs(app)
    # Outermost last: request id (and the 500 of last resort) > body cap > rate limits > strict JSON >
    # idempotency > routes. Everything before idempotency runs before any authentication.
    app.add_middleware(IdempotencyMiddleware, db_getter=lambda: ctx.db)
    app.add_middleware(StrictJsonMiddleware, ctx=ctx)
    app.add_middleware(ThrottleMiddleware, ctx=ctx)
    app.add_middleware(
        BodyLimitMiddleware, ctx=ctx, max_body=settings.max_body_bytes, max_upload=settings.max_upload_bytes
    )
    app.add_middleware(RequestIdMiddleware, ctx=ctx)
    tracing.configure(app, db.engine.sync_engine)  # outside everything, when OTEL_* / PORTSIDE_TRACING ask for it
    return app
