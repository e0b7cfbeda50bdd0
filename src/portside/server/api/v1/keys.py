"""API key management: ``/v1/keys``.

Authorisation lives in :class:`portside.server.auth.KeyService` (one rule for every door): the
routes only authenticate the caller and pass it on as the issuer.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, Field

from portside.server.auth import SCOPES, Principal
from portside.server.context import AppContext, get_ctx
from portside.server.deps import current_principal
from portside.types.common import Page
from portside.types.keys import ApiKey, CreatedApiKey, WhoAmI

router = APIRouter(prefix="/v1/keys", tags=["keys"])


#: ``scopes`` items as the key service checks them (its own message), for the document.
SCOPE_ITEMS: dict[str, Any] = {"type": "string", "enum": sorted(SCOPES)}


class KeyCreate(BaseModel):
    name: str = Field(default="", max_length=200)
    scopes: list[str] = Field(
        default_factory=lambda: ["read", "write"],
        json_schema_extra={"items": SCOPE_ITEMS},  # the service's check and code
    )
    owner: str | None = Field(default=None, max_length=200)


@router.post("", status_code=201, response_model=CreatedApiKey)
async def create_key(
    body: KeyCreate, ctx: AppContext = Depends(get_ctx), caller: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """Create a key (admin; never with scopes beyond the caller's). Its secret is shown only here."""
    info, plaintext = await ctx.keys.create(caller, body.name, body.scopes, body.owner or body.name or "user")
    return {**asdict(info), "key": plaintext}


@router.get("", response_model=Page[ApiKey])
async def list_keys(
    ctx: AppContext = Depends(get_ctx), caller: Principal = Depends(current_principal)
) -> dict[str, Any]:
    items = [asdict(k) for k in await ctx.keys.list(caller)]
    return {"items": items, "total": len(items)}


@router.delete("/{key_id}", response_model=ApiKey)
async def revoke_key(
    key_id: str, ctx: AppContext = Depends(get_ctx), caller: Principal = Depends(current_principal)
) -> dict[str, Any]:
    return asdict(await ctx.keys.revoke(caller, key_id))


@router.get("/me", response_model=WhoAmI)
async def whoami(principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    """The calling key's identity and scopes."""
    return {
        "key_id": principal.key_id,
        "name": principal.name,
        "owner": principal.owner,
        "scopes": sorted(principal.scopes),
    }


def install(app: FastAPI, ctx: AppContext) -> None:
    app.include_router(router)
