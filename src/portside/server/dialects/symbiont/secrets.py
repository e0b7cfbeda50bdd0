"""Symbiont secrets: ``/api/v1/secrets...`` on the native secret service (values only in ``GET .../{name}``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from portside.server.api.v1.secrets import BackendConfig, meta_view
from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.context import AppContext, get_ctx
from portside.server.ratelimit import rate_limited
from portside.server.secrets.backends import SECRET_NAME_RE
from portside.server.secrets.schemas import (
    SecretBackendOut,
    SecretDeleted,
    SecretInfoOut,
    SymbiontSecretList,
    SymbiontSecretValue,
)
from portside.server.secrets.service import SecretService

router = APIRouter(tags=["symbiont"], route_class=WireRoute)
Reader = Depends(rate_limited("read"))
Writer = Depends(rate_limited("write"))
Admin = Depends(rate_limited("admin"))


def svc(ctx: AppContext = Depends(get_ctx)) -> SecretService:
    return ctx.service("secrets", SecretService)


class SecretRequest(BaseModel):
    """``symbiont.SecretRequest``; ``secret_value`` may be null on the wire (then 400)."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"required": ["agent_id", "secret_name", "secret_value"]}
    )

    agent_id: str = Field(
        max_length=128, json_schema_extra={"pattern": SECRET_NAME_RE.pattern}
    )  # the service's rule and code
    secret_name: str = Field(max_length=128, json_schema_extra={"pattern": SECRET_NAME_RE.pattern})
    secret_value: str | None = Field(default=None, max_length=65536, json_schema_extra={"type": "string"})
    description: str | None = Field(default=None, max_length=2000)


@router.post("/secrets/config", response_model=SecretBackendOut)
async def configure_secret_backend(
    body: BackendConfig, s: SecretService = Depends(svc), caller: Principal = Admin
) -> Any:
    return await s.configure(caller, body.model_dump())


@router.post("/secrets", response_model=SecretInfoOut)
async def store_secret(body: SecretRequest, s: SecretService = Depends(svc), caller: Principal = Writer) -> Any:
    meta = await s.store(caller, body.agent_id, body.secret_name, body.secret_value, description=body.description)
    return meta_view(body.agent_id, body.secret_name, meta)


@router.get("/secrets/{agent_id}", response_model=SymbiontSecretList)
async def list_secrets(agent_id: str, s: SecretService = Depends(svc), caller: Principal = Reader) -> Any:
    return {"agent_id": agent_id, "secrets": await s.list(caller, agent_id)}


@router.get("/secrets/{agent_id}/{secret_name}", response_model=SymbiontSecretValue)
async def get_secret(
    agent_id: str, secret_name: str, s: SecretService = Depends(svc), caller: Principal = Reader
) -> Any:
    value, _ = await s.get(caller, agent_id, secret_name)
    return {"agent_id": agent_id, "secret_name": secret_name, "value": value.reveal()}


@router.delete("/secrets/{agent_id}/{secret_name}", response_model=SecretDeleted)
async def delete_secret(
    agent_id: str, secret_name: str, s: SecretService = Depends(svc), caller: Principal = Writer
) -> Any:
    await s.delete(caller, agent_id, secret_name)
    return {"agent_id": agent_id, "secret_name": secret_name, "deleted": True}
