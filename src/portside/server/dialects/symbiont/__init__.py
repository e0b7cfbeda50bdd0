"""The Symbiont door: the routes symbiont-sdk 0.3.0 calls under ``/api/v1`` (see docs/wire/symbiont.md).

Each module of this package serves one area: its ``router`` (paths relative to ``/api/v1``) is
mounted under ``/api/v1``; an optional ``setup(app, ctx)`` runs first for extra wiring. Adding an
area is one line in :data:`MODULES`; a name without its module fails start-up (no silent skip).

Error bodies are ``{"error", "code", "details", "message"}`` (the SDK ignores bodies and maps
statuses: 401, 404, 429, anything else ``APIError``); ai-spine's ``/api/v1/user(s)`` routes keep
their own renderer (a longer prefix wins).
"""

from __future__ import annotations

import importlib
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from portside.server.context import AppContext
from portside.server.logs import request_id_var

PREFIX = "/api/v1"

#: Area modules of this package, mounted in this order. Append one line per new module.
MODULES: list[str] = [
    "reviews",
    "secrets",
    "agents",
    "knowledge",
    "mcp",
    "inputs",
    "workflows",
    "system",
]


def render_error(status: int, code: str, message: str, details: dict[str, Any]) -> JSONResponse:
    """``symbiont.ErrorResponse`` (``error``, ``code``, ``details``) plus ``message`` and ``request_id``."""
    body = {"error": message, "code": code, "details": details, "message": message, "request_id": request_id_var.get()}
    return JSONResponse(body, status_code=status)


def install(app: FastAPI, ctx: AppContext) -> None:
    """Register the error renderer and mount every area module's router (a missing module fails start-up)."""
    ctx.error_renderers.append((PREFIX, render_error))
    for name in MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        if hasattr(module, "setup"):
            module.setup(app, ctx)
        if hasattr(module, "router"):
            app.include_router(module.router, prefix=PREFIX)
