"""Symbiont HTTP input servers: ``/api/v1/http-input/servers...`` on Portside's HTTP inputs.

A Symbiont "HTTP input server" is a Portside input: instead of binding ``bind_address:port``
(stored and echoed, not bound), it is served at ``/hooks/{server_id}`` on the Portside origin.
``config.agent_id`` is the input's target (``flow:<id>``, ``agent:<id>`` or a bare id).
``auth_header`` is echoed masked; sending the mask back keeps the stored value. Inputs made here
wait up to 10 s for the target's result unless ``wait_seconds`` says otherwise.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.context import AppContext, get_ctx
from portside.server.errors import InvalidInput
from portside.server.inputs.schemas import (
    InputMetrics,
    SymbiontInputDeleted,
    SymbiontInputServer,
    SymbiontTriggerResult,
)
from portside.server.inputs.service import InputService, InputView
from portside.server.inputs.spec import TARGET_PATTERN, InputPatch, InputSpec
from portside.server.ratelimit import rate_limited

router = APIRouter(tags=["symbiont"], route_class=WireRoute)
Reader = Depends(rate_limited("read"))
Writer = Depends(rate_limited("write"))
MASK = "********"
DEFAULT_WAIT_SECONDS = 10.0
_SYMBIONT_KEYS = (
    "bind_address",
    "port",
    "path",
    "max_body_bytes",
    "concurrency",
    "routing_rules",
    "response_control",
    "forward_headers",
    "cors_enabled",
    "audit_enabled",
    "jwt_public_key_path",
)
_EXTRA_KEYS = ("rate_limit_per_minute", "rate_limit_burst", "wait_seconds")


def inputs(ctx: AppContext = Depends(get_ctx)) -> InputService:
    return ctx.service("inputs", InputService)


class HttpInputConfig(BaseModel):
    """``symbiont.HttpInputConfig`` (extra keys kept: ``secret``, ``rate_limit_per_minute``, ``wait_seconds``...)."""

    model_config = ConfigDict(extra="allow")

    agent_id: str = Field(min_length=1, max_length=300, json_schema_extra={"pattern": TARGET_PATTERN})
    auth_header: str | None = None


class CreateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    config: HttpInputConfig


class UpdateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    server_id: str | None = None
    config: HttpInputConfig


class TriggerBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    server_id: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)


def server_info(v: InputView) -> dict[str, Any]:
    """``HttpInputServerInfo`` (plus the webhook path)."""
    config = v.config.model_dump(mode="json", include=set(_SYMBIONT_KEYS))
    config.update(agent_id=v.row.target, auth_header=MASK if v.has_auth_header else None)
    return {
        "server_id": v.row.id,
        "config": config,
        "status": v.row.status,
        "uptime_seconds": v.uptime_seconds,
        "requests_processed": v.row.requests_processed,
        "active_connections": v.stats.in_flight,
        "last_error": v.row.last_error,
        "webhook_path": f"/hooks/{v.row.id}",
    }


def _fields(config: HttpInputConfig) -> dict[str, Any]:
    raw = config.model_dump()
    out = {k: raw[k] for k in (*_SYMBIONT_KEYS, *_EXTRA_KEYS) if k in raw}
    for key in ("routing_rules", "response_control"):
        if key in out and out[key] is None:
            out.pop(key)
    secret = raw.get("secret") or raw.get("hmac_secret")
    if secret:
        out["secret"] = secret
    return out


def _invalid(exc: ValidationError) -> InvalidInput:
    first = exc.errors()[0] if exc.errors() else {"msg": "invalid config", "loc": ()}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return InvalidInput(f"invalid config: {where}: {first.get('msg')}", code="invalid_input_config")


@router.post("/http-input/servers", response_model=SymbiontInputServer)
async def create_http_input_server(
    body: CreateRequest, svc: InputService = Depends(inputs), caller: Principal = Writer
) -> Any:
    fields = _fields(body.config)
    fields.setdefault("wait_seconds", DEFAULT_WAIT_SECONDS)
    try:
        spec = InputSpec(target=body.config.agent_id, auth_header=body.config.auth_header or None, **fields)
    except ValidationError as exc:
        raise _invalid(exc) from None
    return server_info(await svc.create(caller, spec))


@router.get("/http-input/servers", response_model=list[SymbiontInputServer])
async def list_http_input_servers(
    svc: InputService = Depends(inputs), caller: Principal = Reader
) -> list[dict[str, Any]]:
    return [server_info(v) for v in await svc.list(caller)]


@router.get("/http-input/servers/{server_id}", response_model=SymbiontInputServer)
async def get_http_input_server(server_id: str, svc: InputService = Depends(inputs), caller: Principal = Reader) -> Any:
    return server_info(await svc.get(caller, server_id))


@router.put("/http-input/servers/{server_id}", response_model=SymbiontInputServer)
async def update_http_input_server(
    server_id: str, body: UpdateRequest, svc: InputService = Depends(inputs), caller: Principal = Writer
) -> Any:
    fields = _fields(body.config)
    fields.setdefault("routing_rules", [])
    fields.setdefault("response_control", {})
    fields.setdefault("jwt_public_key_path", None)
    if body.config.auth_header != MASK:
        fields["auth_header"] = body.config.auth_header or None
    try:
        patch = InputPatch(target=body.config.agent_id, **fields)
    except ValidationError as exc:
        raise _invalid(exc) from None
    return server_info(await svc.update(caller, server_id, patch))


@router.post("/http-input/servers/{server_id}/start", response_model=SymbiontInputServer)
async def start_http_input_server(
    server_id: str, svc: InputService = Depends(inputs), caller: Principal = Writer
) -> Any:
    return server_info(await svc.start(caller, server_id))


@router.post("/http-input/servers/{server_id}/stop", response_model=SymbiontInputServer)
async def stop_http_input_server(
    server_id: str, svc: InputService = Depends(inputs), caller: Principal = Writer
) -> Any:
    return server_info(await svc.stop(caller, server_id))


@router.delete("/http-input/servers/{server_id}", response_model=SymbiontInputDeleted)
async def delete_http_input_server(
    server_id: str, svc: InputService = Depends(inputs), caller: Principal = Writer
) -> Any:
    await svc.delete(caller, server_id)
    return {"server_id": server_id, "deleted": True}


@router.post("/http-input/servers/{server_id}/trigger", response_model=SymbiontTriggerResult)
async def trigger_webhook(
    server_id: str, body: TriggerBody, svc: InputService = Depends(inputs), caller: Principal = Writer
) -> Any:
    """``WebhookTriggerResponse``: what the webhook answered to ``payload`` (endpoint auth skipped)."""
    result = await svc.trigger(caller, server_id, body.payload, body.headers)
    return {
        "status": result.outcome,
        "response_code": result.status_code,
        "response_body": result.body,
        "processing_time_ms": result.duration_ms,
        "agent_id": result.target,
    }


@router.get("/http-input/servers/{server_id}/metrics", response_model=InputMetrics)
async def get_http_input_metrics(
    server_id: str, svc: InputService = Depends(inputs), caller: Principal = Reader
) -> Any:
    return await svc.metrics(caller, server_id)
