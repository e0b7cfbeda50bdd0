"""Map exceptions to responses: one JSON error body on native routes, dialect shapes elsewhere."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from portside.server.errors import DomainError, RateLimited
from portside.server.logs import request_id_var

log = logging.getLogger("portside.http")

#: A renderer turns (status, code, message, details) into a response for one dialect.
ErrorRenderer = Callable[[int, str, str, dict[str, Any]], JSONResponse]

_STATUS_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "quota_exceeded",
    503: "unavailable",
    504: "timeout",
}


def native_error_body(code: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    """``{"error": {"code", "message", "details", "request_id"}}``."""
    return {"error": {"code": code, "message": message, "details": details, "request_id": request_id_var.get()}}


def render_native(status: int, code: str, message: str, details: dict[str, Any]) -> JSONResponse:
    return JSONResponse(native_error_body(code, message, details), status_code=status)


def _renderer_for(request: Request) -> ErrorRenderer:
    ctx = getattr(request.app.state, "ctx", None)
    best: tuple[int, ErrorRenderer] = (-1, render_native)
    if ctx is not None:
        path = request.url.path
        for prefix, renderer in ctx.error_renderers:
            if path.startswith(prefix) and len(prefix) > best[0]:
                best = (len(prefix), renderer)
    return best[1]


def _respond(request: Request, status: int, code: str, message: str, details: dict[str, Any]) -> JSONResponse:
    response = _renderer_for(request)(status, code, message, details)
    if status == 429 and "retry_after" in details:
        response.headers["Retry-After"] = str(max(1, round(float(details["retry_after"]))))
    return response


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        out.append(
            {
                "field": ".".join(loc[1:] if loc and loc[0] in {"body", "query", "path"} else loc),
                "location": loc[0] if loc else "",
                "message": err.get("msg", ""),
                "type": err.get("type", ""),
            }
        )
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        details = dict(exc.details)
        if isinstance(exc, RateLimited):
            details.setdefault("retry_after", exc.retry_after)
        return _respond(request, exc.status, exc.code, exc.message, details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        message = f"invalid request: {first['field'] or 'body'}: {first['message']}"
        return _respond(request, 400, "validation_error", message, {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        response = _respond(request, exc.status_code, code, message, {})
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _respond(request, 500, "internal_error", "internal server error", {})
