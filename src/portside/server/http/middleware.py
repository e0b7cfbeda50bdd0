"""Pure-ASGI middlewares: request ids with access logs, and idempotent POSTs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portside._tracing import trace_id_of
from portside.server import tracing
from portside.server.clock import utcnow
from portside.server.http.errors import error_response
from portside.server.idempotency import LEASE_SECONDS, RENEW_SECONDS, Claim, claimed, effects_of, instance_id
from portside.server.ids import new_id
from portside.server.logs import RequestLogContext, request_context_var, request_id_var
from portside.server.metrics.instruments import HTTP_DURATION, HTTP_REQUESTS
from portside.server.store import Database
from portside.server.store.core_models import IdempotencyRow

log = logging.getLogger("portside.access")
error_log = logging.getLogger("portside.http")

REQUEST_ID_HEADER = b"x-request-id"
_LEASE = timedelta(seconds=LEASE_SECONDS)
_NOT_STORED = {401, 403, 408, 429}


class RequestIdMiddleware:
    """Give every request an id (or keep the caller's), echo it back, log the access and count it.

    It is the outermost layer of Portside's own (OpenTelemetry's server span, when tracing is on,
    wraps it), so it also turns an unhandled exception into the door's error body with status 500
    (carrying ``X-Request-ID``, logged with its traceback and as a 500 access), instead of letting it
    reach the server, which would drop the connection. The access line and the HTTP metrics use the
    matched route's template (``/v1/sandboxes/{sandbox_id}``), never the raw path, as their label.
    """

    def __init__(self, app: ASGIApp, ctx: Any = None) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        incoming = headers.get(REQUEST_ID_HEADER, b"").decode("latin-1")
        rid = incoming if incoming and len(incoming) <= 128 and incoming.isprintable() else new_id("req")
        info = RequestLogContext(
            request_id=rid,
            trace_id=tracing.current_trace_id() or trace_id_of(headers.get(b"traceparent", b"").decode("latin-1")),
        )
        token = request_id_var.set(rid)
        info_token = request_context_var.set(info)
        status = 0
        started = time.perf_counter()

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, _send)
        except Exception:
            error_log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if status:  # the response already started: nothing valid can be sent any more
                status = 500
                raise
            response = error_response(self.ctx, scope["path"], 500, "internal_error", "internal server error", {})
            await response(scope, receive, _send)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"]
            code = str(status)
            HTTP_REQUESTS.labels(method, route, code).inc()
            HTTP_DURATION.labels(method, route, code).observe(elapsed)
            level = logging.ERROR if status >= 500 else logging.INFO
            if log.isEnabledFor(level):
                log.log(
                    level,
                    "%s %s %d %.1fms",
                    method,
                    scope["path"],
                    status,
                    elapsed * 1000,
                    extra={
                        "method": method,
                        "route": route,
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )
            request_context_var.reset(info_token)
            request_id_var.reset(token)


def route_template(scope: Scope) -> str:
    """The path template of the route that answered (``/v1/tasks/{task_id}``); ``<unmatched>`` for none.

    A mounted app's routes are prefixed with the mount's path. Raw paths are never used: they would
    make one label value per id.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        return "<unmatched>"
    root = scope.get("root_path", "") or ""
    app_root = scope.get("app_root_path", "") or ""
    prefix = root[len(app_root) :] if root.startswith(app_root) else ""
    return prefix + template if prefix and not template.startswith(prefix) else template


def _json_error(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps(
        {"error": {"code": code, "message": message, "details": details or {}, "request_id": request_id_var.get()}}
    ).encode()
    return status, [(b"content-type", b"application/json")], body


class IdempotencyMiddleware:
    """Run a POST carrying ``Idempotency-Key`` once; replay its stored response afterwards.

    Keys are scoped to the caller's credentials, method and path. The same key with a
    different body is a 409 ``conflict`` with ``details.reason`` ``idempotency_key_reused``;
    a key whose first request is still running is a 409 with reason ``idempotency_in_progress``
    and a ``Retry-After`` (code ``conflict`` because Bay clients map codes, not statuses, to exceptions).
    Responses of 5xx (and transient 4xx such as 401/429) are not stored, so a retry runs the request again.

    A pending row is owned by this server instance under a lease renewed while the request runs; a
    retry that finds the lease expired (its owner crashed) takes the row over and runs the request,
    seeing what the dead attempt committed through :func:`portside.server.idempotency.prior_insert`.
    """

    def __init__(
        self,
        app: ASGIApp,
        db_getter: Any,
        prefixes: tuple[str, ...] = ("/v1/",),
        exclude: tuple[str, ...] = ("/v1/keys",),
    ) -> None:
        self.app = app
        self._db_getter = db_getter
        self.prefixes = prefixes
        self.exclude = exclude  # responses holding secrets are never stored

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.startswith(self.prefixes)
            or path.startswith(self.exclude)
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = headers.get(b"idempotency-key", b"").decode("latin-1").strip()
        if not key:
            await self.app(scope, receive, send)
            return
        if len(key) > 255:
            await _send_raw(send, *_json_error(400, "validation_error", "Idempotency-Key is longer than 255"))
            return
        db: Database = self._db_getter()
        body = await _read_body(receive)
        credential = headers.get(b"authorization", b"") + b"|" + headers.get(b"x-api-key", b"")
        key_scope = hashlib.sha256(credential + b"|POST|" + scope["path"].encode()).hexdigest()
        request_hash = hashlib.sha256(body).hexdigest()

        claim = await self._claim(db, key_scope, key, request_hash)
        if not isinstance(claim, Claim):
            await _send_raw(send, *claim)
            return

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray()}
        messages: list[Message] = []

        async def _replay_receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def _capture(message: Message) -> None:
            # Held back until the outcome is stored, so an immediate repeat finds it completed.
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                captured["body"].extend(message.get("body", b""))
            messages.append(message)

        renewer = asyncio.create_task(self._renew(db, claim))
        try:
            with claimed(claim):
                await self.app(scope, _replay_receive, _capture)
        except BaseException:
            renewer.cancel()
            await self._release(db, claim)
            raise
        renewer.cancel()
        status = int(captured["status"])
        if status >= 500 or status in _NOT_STORED:
            await self._release(db, claim)
        else:
            stored_headers = {
                k.decode("latin-1"): v.decode("latin-1")
                for k, v in captured["headers"]
                if k.lower() in (b"content-type", b"location")
            }
            async with db.transaction() as s:
                await s.execute(
                    update(IdempotencyRow)
                    .where(IdempotencyRow.id == claim.row_id, IdempotencyRow.owner == claim.owner)
                    .values(
                        state="completed",
                        status_code=status,
                        headers=stored_headers,
                        body=bytes(captured["body"]),
                        lease_expires_at=None,
                    )
                )
        for message in messages:
            await send(message)

    async def _claim(
        self, db: Database, key_scope: str, key: str, request_hash: str
    ) -> Claim | tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Insert (or take over) a pending record, or return the response to send instead of running."""
        me = instance_id()
        retry_after = LEASE_SECONDS
        for _ in range(3):
            async with db.session() as s:
                row = (
                    await s.execute(
                        select(IdempotencyRow).where(IdempotencyRow.scope == key_scope, IdempotencyRow.key == key)
                    )
                ).scalar_one_or_none()
            now = utcnow()
            if row is not None:
                if row.request_hash != request_hash:
                    return _json_error(
                        409,
                        "conflict",
                        "this Idempotency-Key was used with a different request body",
                        {"reason": "idempotency_key_reused"},
                    )
                if row.state == "completed":
                    hdrs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in row.headers.items()]
                    hdrs.append((b"idempotent-replayed", b"true"))
                    return int(row.status_code or 200), hdrs, row.body or b""
                if row.lease_expires_at is not None and row.lease_expires_at > now:
                    retry_after = (row.lease_expires_at - now).total_seconds()
                    break
                # The owner is gone (lease expired, or a row from before leases existed): take it over.
                async with db.transaction() as s:
                    taken = await s.execute(
                        update(IdempotencyRow)
                        .where(
                            IdempotencyRow.id == row.id,
                            IdempotencyRow.state == "pending",
                            or_(IdempotencyRow.lease_expires_at.is_(None), IdempotencyRow.lease_expires_at < now),
                        )
                        .values(owner=me, lease_expires_at=now + _LEASE)
                    )
                if _rowcount(taken) == 1:
                    prior = effects_of(row)
                    log.warning(
                        "idempotency key taken over from dead owner %s; its committed effects: %s",
                        row.owner,
                        ", ".join(prior[:20]) or "none",
                    )
                    return Claim(row_id=row.id, owner=me, prior=prior, committed=list(prior))
                continue
            try:
                async with db.transaction() as s:
                    new = IdempotencyRow(
                        scope=key_scope,
                        key=key,
                        request_hash=request_hash,
                        state="pending",
                        created_at=now,
                        headers={},
                        note="",
                        owner=me,
                        lease_expires_at=now + _LEASE,
                    )
                    s.add(new)
                    await s.flush()
                    row_id = new.id
                return Claim(row_id=row_id, owner=me)
            except IntegrityError:
                continue
        seconds = str(max(1, min(int(LEASE_SECONDS), math.ceil(retry_after))))
        status, hdrs, payload = _json_error(
            409,
            "conflict",
            "a request with this Idempotency-Key is still running",
            {"reason": "idempotency_in_progress"},
        )
        return status, [*hdrs, (b"retry-after", seconds.encode())], payload

    async def _renew(self, db: Database, claim: Claim) -> None:
        """Keep the lease of a running request alive until it is cancelled."""
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                async with db.transaction() as s:
                    await s.execute(
                        update(IdempotencyRow)
                        .where(
                            IdempotencyRow.id == claim.row_id,
                            IdempotencyRow.owner == claim.owner,
                            IdempotencyRow.state == "pending",
                        )
                        .values(lease_expires_at=utcnow() + _LEASE)
                    )
            except Exception:  # a missed renewal is retried; the lease outlives a few of them
                log.warning("could not renew an idempotency lease", exc_info=True)

    async def _release(self, db: Database, claim: Claim) -> None:
        """Let a retry run the request again: delete the row, or expire it when work was committed."""
        async with db.transaction() as s:
            mine = (IdempotencyRow.id == claim.row_id, IdempotencyRow.owner == claim.owner)
            if claim.committed:  # keep what was made, so the retry can return it instead of a duplicate
                await s.execute(update(IdempotencyRow).where(*mine).values(lease_expires_at=None))
            else:
                await s.execute(delete(IdempotencyRow).where(*mine))


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_raw(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
