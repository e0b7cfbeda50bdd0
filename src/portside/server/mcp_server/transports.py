"""MCP transports: streamable HTTP under the server (``/mcp``, Bearer keys) and stdio (``portside mcp``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server import Server
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from portside.server.auth import Principal
from portside.server.deps import bearer_token
from portside.server.errors import DomainError
from portside.server.http.errors import native_error_body

log = logging.getLogger("portside.mcp")

Authenticator = Callable[[str | None], Awaitable[Principal]]
"""Checks an API key and returns its principal (raises a 401 domain error otherwise)."""

#: ASGI scope key under which the authenticated :class:`Principal` reaches the tools.
PRINCIPAL_SCOPE_KEY = "portside.principal"
MCP_SESSION_HEADER = "mcp-session-id"
_AUTH_DISABLED = Principal(key_id="anonymous", name="auth disabled", owner="admin", scopes=frozenset({"admin"}))


def principal_of(request: Any) -> Principal | None:
    """The principal the HTTP transport attached to the request (None on stdio)."""
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return None
    principal = scope.get(PRINCIPAL_SCOPE_KEY)
    return principal if isinstance(principal, Principal) else None


def session_id_of(request: Any) -> str | None:
    """The ``Mcp-Session-Id`` of a stateful streamable-HTTP session (None when stateless)."""
    headers = getattr(request, "headers", None)
    value = headers.get(MCP_SESSION_HEADER) if headers is not None else None
    return str(value) if value else None


class AuthenticatedMCP:
    """The ASGI app at ``/mcp``: checks the Bearer key (``read`` scope), then serves MCP.

    The key's principal is bound to the MCP session (another key presenting the session id gets
    404, as if the session did not exist), and tools act as that principal.
    """

    def __init__(
        self, authenticate: Authenticator, manager: StreamableHTTPSessionManager, *, auth_enabled: bool = True
    ) -> None:
        self.authenticate = authenticate
        self.manager = manager
        self.auth_enabled = auth_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - MCP is HTTP only
            return
        try:
            principal = await self.authenticate(bearer_token(Request(scope))) if self.auth_enabled else _AUTH_DISABLED
            principal.require("read")
        except DomainError as exc:
            headers = {"WWW-Authenticate": 'Bearer realm="portside"'} if exc.status == 401 else None
            body = native_error_body(exc.code, exc.message, exc.details)
            await JSONResponse(body, status_code=exc.status, headers=headers)(scope, receive, send)
            return
        scope["user"] = AuthenticatedUser(
            AccessToken(
                token=principal.key_id,
                client_id=principal.key_id,
                scopes=sorted(principal.scopes),
                subject=principal.owner,
            )
        )
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await self.manager.handle_request(scope, receive, send)


async def run_stdio(server: Server[Any], *, on_close: Callable[[], Awaitable[None]] | None = None) -> None:
    """Serve ``server`` over this process's stdin/stdout until the client closes stdin."""
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        if on_close is not None:
            await on_close()
