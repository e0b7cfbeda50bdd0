"""FastAPI dependencies shared by the native routers: the caller and their scopes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request

from portside.server.auth import Principal
from portside.server.context import AppContext, get_ctx
from portside.server.errors import Unauthenticated

_ANONYMOUS_ADMIN = Principal(key_id="anonymous", name="auth disabled", owner="admin", scopes=frozenset({"admin"}))


def bearer_token(request: Request) -> str | None:
    """The key from ``Authorization: Bearer``, or ``X-API-Key`` as a fallback.

    A request presenting two different keys is refused (401): a bad key never rides along a good one.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    api_key = request.headers.get("x-api-key") or None
    if scheme.lower() == "bearer" and token.strip():
        if api_key is not None and api_key != token.strip():
            raise Unauthenticated("conflicting credentials: Authorization and X-API-Key carry different keys")
        return token.strip()
    return api_key


async def current_principal(request: Request, ctx: AppContext = Depends(get_ctx)) -> Principal:
    """The authenticated caller (401 without a valid key)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    if not ctx.settings.auth_enabled:
        principal = _ANONYMOUS_ADMIN
    else:
        principal = await ctx.keys.authenticate(bearer_token(request))
    request.state.principal = principal
    return principal


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: the caller, who must hold ``scope`` (403 otherwise)."""

    async def _dep(principal: Principal = Depends(current_principal)) -> Principal:
        principal.require(scope)
        return principal

    return _dep


async def optional_principal(request: Request, ctx: AppContext = Depends(get_ctx)) -> Principal | None:
    """The caller when the request presents a key (401 if it is not valid), None when it presents none.

    For routes open to anyone that show more to a key holder, such as the health endpoints.
    """
    if ctx.settings.auth_enabled and not bearer_token(request):
        return None
    return await current_principal(request, ctx)
