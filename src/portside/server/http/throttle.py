"""Rate limits at the edge, for every door (``/v1``, ``/neuron``, ``/mcp``, ``/hooks``, the dialects).

Per request, before any door runs:

1. a client address that has used up its failed-authentication budget gets 429 for every request
   until the bucket refills (so a correct guess in the middle of a brute force is refused too), except
   key-less requests to the health endpoints: monitoring without a key always works;
2. the request is charged to its credential's bucket (the Bearer / ``X-API-Key`` value, hashed; the
   client address when it sends none) and gets 429 when it is empty (health endpoints are not charged).

When the door answers 401 the request counts as a failed authentication for its address, and its
credential bucket is refunded (a wrong key is not somebody's budget). Limits and defaults live in
:mod:`portside.server.ratelimit`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portside.server.errors import RateLimited
from portside.server.http.errors import error_response
from portside.server.ratelimit import auth_failure_limiter_of, limiter_of

#: Never limited: monitoring must see a server that is up.
EXEMPT_PATHS = frozenset({"/v1/health", "/v1/ready", "/health", "/api/v1/health"})
_LOCKED_OUT = "too many failed authentications from this address; retry later"


def credential_of(scope: Scope) -> str:
    """The credential a request presents: the Bearer token, else ``X-API-Key``, else the raw Authorization."""
    authorization = api_key = ""
    for key, value in scope.get("headers", ()):
        name = key.lower()
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"x-api-key":
            api_key = value.decode("latin-1")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return api_key or authorization


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class ThrottleMiddleware:
    """Apply the request and failed-authentication limiters of ``ctx`` to every HTTP request."""

    def __init__(self, app: ASGIApp, ctx: Any) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credential = credential_of(scope)
        exempt = scope["path"] in EXEMPT_PATHS
        requests, failures = limiter_of(self.ctx), auth_failure_limiter_of(self.ctx)
        if (exempt and not credential) or (not requests.enabled and not failures.enabled):
            await self.app(scope, receive, send)
            return
        address = "addr:" + client_address(scope)
        bucket = "cred:" + hashlib.sha256(credential.encode()).hexdigest() if credential else address
        charged = not exempt
        try:
            failures.peek(address, message=_LOCKED_OUT)
            if charged:
                requests.check(bucket)
        except RateLimited as exc:
            details = {**exc.details, "retry_after": exc.retry_after}
            response = error_response(self.ctx, scope["path"], 429, exc.code, exc.message, details)
            await response(scope, receive, send)
            return

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                failures.charge(address)
                if charged:
                    requests.refund(bucket)
            await send(message)

        await self.app(scope, receive, _send)
