"""Per-agent secrets: ``/v1/secrets/{agent_id}[/{name}]``, ``/v1/secret-backend``, ``/v1/audit/secrets``.

The agent's owner uses its namespace with ``read`` / ``write``; other agents' secrets need the
``secrets`` scope. Values are returned only by ``GET /v1/secrets/{agent_id}/{name}``, which is audited.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.clock import isoformat
from portside.server.context import AppContext, get_ctx
from portside.server.deps import require
from portside.server.secrets.backends import SECRET_FILE_PATTERN, SECRET_NAME_RE
from portside.server.secrets.schemas import (
    SecretAuditPage,
    SecretBackendOut,
    SecretDeleted,
    SecretInfoOut,
    SecretListOut,
    SecretOut,
)
from portside.server.secrets.service import SecretService, cipher_of
from portside.server.secrets.tables import SecretAuditRow, SecretMetaRow

router = APIRouter(prefix="/v1", tags=["secrets"], route_class=WireRoute)
Reader = Depends(require("read"))
Writer = Depends(require("write"))
Admin = Depends(require("admin"))


def svc(ctx: AppContext = Depends(get_ctx)) -> SecretService:
    return ctx.service("secrets", SecretService)


class StoreSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(
        max_length=128, json_schema_extra={"pattern": SECRET_NAME_RE.pattern}
    )  # the service's rule and code
    name: str = Field(max_length=128, json_schema_extra={"pattern": SECRET_NAME_RE.pattern})
    value: str = Field(max_length=65536)
    description: str | None = Field(default=None, max_length=2000)


class PutSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(max_length=65536)
    description: str | None = Field(default=None, max_length=2000)


class VaultSettings(BaseModel):
    url: str
    auth_method: Literal["token", "kubernetes", "aws_iam", "approle"] = "token"
    token: str | None = None
    role_id: str | None = None
    secret_id: str | None = None
    kubernetes_role: str | None = None
    aws_role: str | None = None


class BackendConfig(BaseModel):
    """The Symbiont SDK's ``SecretBackendConfig`` (``vault`` needs ``vault_config``, checked by the service)."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"backend_type": {"const": "vault"}}, "required": ["backend_type"]},
            "then": {"required": ["vault_config"], "properties": {"vault_config": {"type": "object"}}},
        }
    )

    backend_type: Literal["vault", "encrypted_file", "os_keychain"]
    vault_config: VaultSettings | None = None
    file_path: str | None = Field(
        default=None,
        description="Encrypted-file backend: a relative path under `<data_dir>/secrets/` (default: "
        "`<data_dir>/secrets.json`); an absolute path or `..` is 400 `invalid_secret_file_path`.",
        json_schema_extra={"pattern": SECRET_FILE_PATTERN},  # enforced by the service (its own code)
    )
    encryption_key: str | None = None


def meta_view(agent_id: str, name: str, meta: SecretMetaRow | None) -> dict[str, Any]:
    """Metadata of a secret (never its value): ``SecretResponse`` fields plus description and backend."""
    return {
        "agent_id": agent_id,
        "secret_name": name,
        "name": name,
        "description": meta.description if meta else None,
        "backend": meta.backend if meta else None,
        "created_at": isoformat(meta.created_at) if meta else None,
        "updated_at": isoformat(meta.updated_at) if meta else None,
    }


def audit_view(row: SecretAuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": isoformat(row.at),
        "action": row.action,
        "outcome": row.outcome,
        "agent_id": row.agent_id,
        "secret_name": row.secret_name,
        "actor": row.actor,
        "key_id": row.key_id,
        "backend": row.backend,
        "request_id": row.request_id,
    }


@router.post("/secrets", status_code=201, response_model=SecretInfoOut)
async def store_secret(body: StoreSecret, s: SecretService = Depends(svc), caller: Principal = Writer) -> Any:
    meta = await s.store(caller, body.agent_id, body.name, body.value, description=body.description)
    return meta_view(body.agent_id, body.name, meta)


@router.put("/secrets/{agent_id}/{name}", response_model=SecretInfoOut)
async def put_secret(
    agent_id: str, name: str, body: PutSecret, s: SecretService = Depends(svc), caller: Principal = Writer
) -> Any:
    meta = await s.store(caller, agent_id, name, body.value, description=body.description)
    return meta_view(agent_id, name, meta)


@router.get("/secrets/{agent_id}", response_model=SecretListOut)
async def list_secrets(agent_id: str, s: SecretService = Depends(svc), caller: Principal = Reader) -> Any:
    """Names (and metadata) of an agent's secrets; never values."""
    names = await s.list(caller, agent_id)
    metas = await s.metadata(agent_id)
    return {"agent_id": agent_id, "secrets": names, "items": [meta_view(agent_id, n, metas.get(n)) for n in names]}


@router.get("/secrets/{agent_id}/{name}", response_model=SecretOut)
async def get_secret(agent_id: str, name: str, s: SecretService = Depends(svc), caller: Principal = Reader) -> Any:
    """The value of one secret (audited)."""
    value, meta = await s.get(caller, agent_id, name)
    return {**meta_view(agent_id, name, meta), "value": value.reveal()}


@router.delete("/secrets/{agent_id}/{name}", response_model=SecretDeleted)
async def delete_secret(agent_id: str, name: str, s: SecretService = Depends(svc), caller: Principal = Writer) -> Any:
    await s.delete(caller, agent_id, name)
    return {"agent_id": agent_id, "secret_name": name, "deleted": True}


@router.get("/secret-backend", response_model=SecretBackendOut)
async def get_backend(s: SecretService = Depends(svc), _: Principal = Reader) -> Any:
    return s.describe()


@router.put("/secret-backend", response_model=SecretBackendOut)
async def configure_backend(body: BackendConfig, s: SecretService = Depends(svc), caller: Principal = Admin) -> Any:
    """Switch the secret backend (admin). Existing secrets stay in the old backend."""
    return await s.configure(caller, body.model_dump())


@router.get("/audit/secrets", response_model=SecretAuditPage)
async def secret_audit(
    agent_id: str | None = None,
    action: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
    s: SecretService = Depends(svc),
    caller: Principal = Reader,
) -> Any:
    """Secret access events, newest first (without ``secrets`` scope: your namespaces only)."""
    rows, next_cursor = await s.audit(caller, agent_id=agent_id, action=action, limit=limit, cursor=cursor)
    return {"items": [audit_view(r) for r in rows], "next_cursor": next_cursor}


def install(app: FastAPI, ctx: AppContext) -> None:
    """Build the secret service on the shared cipher; mount the routes."""
    settings = ctx.settings
    data_dir = settings.ensure_data_dir()
    service = SecretService(ctx.db, cipher_of(ctx.services, settings.secret_key, data_dir), data_dir)
    ctx.services["secrets"] = service
    ctx.on_start.append(service.start)
    ctx.on_stop.append(service.stop)
    app.include_router(router)
