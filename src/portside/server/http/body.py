"""Request bodies at the edge: a size cap before anything reads them, and strict JSON.

:class:`BodyLimitMiddleware` runs before authentication: a declared ``Content-Length`` over the limit
is answered 413 ``payload_too_large`` without reading a byte, and a streamed (chunked) body is
counted as the app reads it and cut off with the same 413 once over. Upload routes (multipart
files) get a larger limit than everything else.

:class:`StrictJsonMiddleware` refuses, with a 400 ``validation_error``, JSON that Python accepts but
nothing downstream can store or send back: lone UTF-16 surrogates (``"\\ud800"``), integers outside
64 bits, ``NaN``/``Infinity`` and floats that overflow to infinity, and bytes that are not UTF-8.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portside.server.http.errors import error_response

MIB = 1024 * 1024
INT64_MAX = 2**63 - 1
#: Paths that take file uploads (multipart), allowed the upload limit.
UPLOAD_PATHS: tuple[re.Pattern[str], ...] = (re.compile(r"^/v1/sandboxes/[^/]+/filesystem/upload$"),)
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
#: Cheap pre-filter: only bodies containing one of these are parsed and checked in full.
_SUSPECT = re.compile(rb"\\u[dD][89a-fA-F]|\d{19}|NaN|Infinity|\d[eE]\+?\d{3}")


class BodyTooLarge(HTTPException):
    """413 ``payload_too_large``. An HTTPException so that FastAPI's body parsing lets it through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the {limit}-byte limit")
        self.limit = limit


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


def _payload_too_large(ctx: Any, path: str, limit: int) -> Any:
    return error_response(
        ctx, path, 413, "payload_too_large", f"the request body is larger than the {limit}-byte limit", {"limit": limit}
    )


class BodyLimitMiddleware:
    """Cap request bodies at ``max_body`` bytes (``max_upload`` on :data:`UPLOAD_PATHS`)."""

    def __init__(
        self, app: ASGIApp, ctx: Any, *, max_body: int, max_upload: int, upload_paths: Iterable[re.Pattern[str]] = ()
    ) -> None:
        self.app = app
        self.ctx = ctx
        self.max_body = max_body
        self.max_upload = max_upload
        self.upload_paths = tuple(upload_paths) or UPLOAD_PATHS

    def limit_for(self, path: str) -> int:
        return self.max_upload if any(p.match(path) for p in self.upload_paths) else self.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = self.limit_for(path)
        declared = _header(scope, b"content-length").strip()
        if declared and (not declared.isdigit() or int(declared) > limit):
            if not declared.isdigit():
                response = error_response(self.ctx, path, 400, "validation_error", "invalid Content-Length", {})
            else:
                response = _payload_too_large(self.ctx, path, limit)
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        received = 0
        started = False

        async def _receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def _send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, _receive, _send)
        except BodyTooLarge as exc:
            if started:
                raise
            response = _payload_too_large(self.ctx, path, exc.limit)
            response.headers["Connection"] = "close"
            await response(scope, receive, send)


class _Rejected(ValueError):
    pass


def _parse_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > 19 or abs(int(text)) > INT64_MAX:
        raise _Rejected(f"integer {text[:40]} is outside the 64-bit range")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Rejected(f"number {text[:40]} is too large")
    return value


def _parse_constant(name: str) -> Any:
    raise _Rejected(f"{name} is not valid JSON")


def _check_strings(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _Rejected("a string holds a lone UTF-16 surrogate (e.g. \\ud800)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def json_problem(body: bytes, *, must_be_utf8: bool) -> str | None:
    """Why ``body`` is not acceptable JSON input, or None (also None for bodies that are not JSON at all)."""
    if must_be_utf8:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return "the body is not valid UTF-8"
    if not _SUSPECT.search(body):
        return None
    try:
        parsed = json.loads(body, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
        _check_strings(parsed)
    except _Rejected as exc:
        return str(exc)
    except ValueError:  # not JSON (or not text): the route decides what to do with it
        return None
    return None


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("", "application/json") or media.endswith("+json")


class StrictJsonMiddleware:
    """400 ``validation_error`` for JSON bodies that would fail later (see the module docstring).

    Bodies of uploads, multipart forms and octet streams pass untouched; any other body is read
    (already capped by :class:`BodyLimitMiddleware`) and replayed to the app.
    """

    def __init__(self, app: ASGIApp, ctx: Any, *, upload_paths: Iterable[re.Pattern[str]] = ()) -> None:
        self.app = app
        self.ctx = ctx
        self.upload_paths = tuple(upload_paths) or UPLOAD_PATHS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = _header(scope, b"content-type")
        media = content_type.split(";", 1)[0].strip().lower()
        if (
            scope["type"] != "http"
            or scope["method"] not in _BODY_METHODS
            or media.startswith("multipart/")
            or media == "application/octet-stream"
            or any(p.match(scope["path"]) for p in self.upload_paths)
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        strict_utf8 = _is_json(content_type) and not scope["path"].startswith("/hooks/")
        problem = json_problem(body, must_be_utf8=strict_utf8) if body else None
        if problem is not None:
            response = error_response(
                self.ctx, scope["path"], 400, "validation_error", f"invalid JSON body: {problem}", {"location": "body"}
            )
            await response(scope, receive, send)
            return
        replayed = False

        async def _replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, _replay, send)
