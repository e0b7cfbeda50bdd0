"""Map exceptions to responses: one JSON error body on native routes, dialect shapes elsewhere."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
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


def renderer_for_path(ctx: Any, path: str) -> ErrorRenderer:
    """The error renderer of the door serving ``path`` (the longest registered prefix; native otherwise)."""
    best: tuple[int, ErrorRenderer] = (-1, render_native)
    for prefix, renderer in getattr(ctx, "error_renderers", ()):
        if path.startswith(prefix) and len(prefix) > best[0]:
            best = (len(prefix), renderer)
    return best[1]


def scrub(value: Any) -> Any:
    """``value`` with every string made encodable as UTF-8 (lone surrogates become U+FFFD)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


def error_response(ctx: Any, path: str, status: int, code: str, message: str, details: dict[str, Any]) -> JSONResponse:
    """The door's error body for ``path``; safe for any message (a bad string never turns a 4xx into a 500)."""
    message, details = scrub(message), scrub(details)
    renderer = renderer_for_path(ctx, path)
    try:
        response = renderer(status, code, message, details)
    except (TypeError, ValueError):  # details a renderer cannot serialise (e.g. NaN): drop them
        response = renderer(status, code, message, {})
    if status == 429 and "retry_after" in details:
        response.headers["Retry-After"] = str(max(1, math.ceil(float(details["retry_after"]))))
    return response


def _respond(request: Request, status: int, code: str, message: str, details: dict[str, Any]) -> JSONResponse:
    return error_response(getattr(request.app.state, "ctx", None), request.url.path, status, code, message, details)


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

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _unrepresentable(request: Request, exc: Exception) -> JSONResponse:
        # Last line behind the edge's input checks: a value the store cannot represent is bad input.
        log.info("unrepresentable input on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return _respond(request, 400, "validation_error", "a value in the request is out of range", {})

    # Unhandled exceptions are rendered by RequestIdMiddleware (inside the request id and access log,
    # without closing the connection); see portside.server.http.middleware.
