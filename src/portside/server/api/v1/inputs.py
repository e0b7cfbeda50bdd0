"""HTTP inputs over the native API (``/v1/inputs``) and the public webhook door (``/hooks/{input_id}``).

``/hooks/...`` takes no API key: an input is protected by its own HMAC secret, ``auth_header`` or
JWT key, by its rate limit and body limit. Everything under ``/v1/inputs`` needs a key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from portside.server.api.params import MAX_OFFSET
from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.clock import isoformat
from portside.server.context import AppContext, get_ctx
from portside.server.deps import require
from portside.server.errors import PayloadTooLarge
from portside.server.inputs.models import HttpInputRequestRow
from portside.server.inputs.schemas import (
    HttpInputList,
    HttpInputOut,
    InputDeleted,
    InputMetrics,
    InputRequestPage,
    TriggerResult,
)
from portside.server.inputs.service import HookResult, InputService, InputView
from portside.server.inputs.spec import InputPatch, InputSpec, TriggerRequest

router = APIRouter(prefix="/v1", tags=["http inputs"], route_class=WireRoute)
hooks = APIRouter(tags=["webhooks"])
Reader = Depends(require("read"))
Writer = Depends(require("write"))
HOOK_METHODS = ["POST", "PUT", "PATCH"]
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, PUT, PATCH, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization, X-Signature-256",
    "Access-Control-Max-Age": "600",
}


def inputs(ctx: AppContext = Depends(get_ctx)) -> InputService:
    return ctx.service("inputs", InputService)


def hook_url(request: Request, input_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/hooks/{input_id}"


def input_view(v: InputView, request: Request) -> dict[str, Any]:
    """An input: its target, settings, whether it has secrets (never their values), state and counters."""
    row = v.row
    return {
        "id": row.id,
        "name": row.name,
        "target": row.target,
        "url": hook_url(request, row.id),
        "status": row.status,
        "owner": row.owner,
        "has_secret": v.has_secret,
        "has_auth_header": v.has_auth_header,
        **v.config.model_dump(mode="json"),
        "uptime_seconds": v.uptime_seconds,
        "requests_processed": row.requests_processed,
        "active_connections": v.stats.in_flight,
        "last_request_at": isoformat(row.last_request_at) if row.last_request_at else None,
        "last_error": row.last_error,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
    }


def result_view(r: HookResult) -> dict[str, Any]:
    """A trigger's outcome: the response the webhook gave."""
    return {
        "status": r.outcome,
        "response_code": r.status_code,
        "response_body": r.body,
        "processing_time_ms": r.duration_ms,
        "target": r.target,
        "ref": r.ref,
    }


def request_view(row: HttpInputRequestRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "input_id": row.input_id,
        "received_at": isoformat(row.received_at),
        "source": row.source,
        "method": row.method,
        "path": row.path,
        "remote_addr": row.remote_addr,
        "body_bytes": row.body_bytes,
        "target": row.target,
        "outcome": row.outcome,
        "status_code": row.status_code,
        "ref": row.ref,
        "error": row.error,
        "duration_ms": row.duration_ms,
    }


@router.post("/inputs", status_code=201, response_model=HttpInputOut)
async def create_input(
    body: InputSpec, request: Request, svc: InputService = Depends(inputs), caller: Principal = Writer
) -> Any:
    return input_view(await svc.create(caller, body), request)


@router.get("/inputs", response_model=HttpInputList)
async def list_inputs(request: Request, svc: InputService = Depends(inputs), caller: Principal = Reader) -> Any:
    return {"items": [input_view(v, request) for v in await svc.list(caller)]}


@router.get("/inputs/{input_id}", response_model=HttpInputOut)
async def get_input(
    input_id: str, request: Request, svc: InputService = Depends(inputs), caller: Principal = Reader
) -> Any:
    return input_view(await svc.get(caller, input_id), request)


@router.patch("/inputs/{input_id}", response_model=HttpInputOut)
async def update_input(
    input_id: str, body: InputPatch, request: Request, svc: InputService = Depends(inputs), caller: Principal = Writer
) -> Any:
    return input_view(await svc.update(caller, input_id, body), request)


@router.post("/inputs/{input_id}/start", response_model=HttpInputOut)
async def start_input(
    input_id: str, request: Request, svc: InputService = Depends(inputs), caller: Principal = Writer
) -> Any:
    return input_view(await svc.start(caller, input_id), request)


@router.post("/inputs/{input_id}/stop", response_model=HttpInputOut)
async def stop_input(
    input_id: str, request: Request, svc: InputService = Depends(inputs), caller: Principal = Writer
) -> Any:
    return input_view(await svc.stop(caller, input_id), request)


@router.delete("/inputs/{input_id}", response_model=InputDeleted)
async def delete_input(input_id: str, svc: InputService = Depends(inputs), caller: Principal = Writer) -> Any:
    await svc.delete(caller, input_id)
    return {"id": input_id, "deleted": True}


@router.post("/inputs/{input_id}/trigger", response_model=TriggerResult)
async def trigger_input(
    input_id: str, body: TriggerRequest, svc: InputService = Depends(inputs), caller: Principal = Writer
) -> Any:
    return result_view(await svc.trigger(caller, input_id, body.payload, body.headers, body.path))


@router.get("/inputs/{input_id}/metrics", response_model=InputMetrics)
async def input_metrics(input_id: str, svc: InputService = Depends(inputs), caller: Principal = Reader) -> Any:
    return await svc.metrics(caller, input_id)


@router.get("/inputs/{input_id}/requests", response_model=InputRequestPage)
async def input_requests(
    input_id: str,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    svc: InputService = Depends(inputs),
    caller: Principal = Reader,
) -> Any:
    rows, total = await svc.requests(caller, input_id, limit=limit, offset=offset)
    return {"items": [request_view(r) for r in rows], "total": total}


# ---------------------------------------------------------------- the public webhook door


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than this input's limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than this input's limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _respond(result: HookResult) -> Response:
    headers = dict(_CORS) if result.cors else {}
    if result.raw_text is not None:
        return PlainTextResponse(result.raw_text, status_code=result.status_code, headers=headers)
    return JSONResponse(result.body, status_code=result.status_code, headers=headers)


async def _hook(request: Request, input_id: str, subpath: str, svc: InputService) -> Response:
    ep = await svc.endpoint(input_id)
    try:
        body = await _read_body(request, ep.config.max_body_bytes)
    except PayloadTooLarge as exc:
        raise svc.reject(input_id, exc) from None
    result = await svc.receive(
        ep,
        method=request.method,
        path="/" + subpath if subpath else "",
        query=dict(request.query_params),
        headers=dict(request.headers),
        body=body,
        remote=request.client.host if request.client else None,
    )
    return _respond(result)


async def webhook(input_id: str, request: Request, svc: InputService = Depends(inputs)) -> Response:
    """Call an input. Signed inputs need ``X-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``."""
    return await _hook(request, input_id, "", svc)


async def webhook_subpath(
    input_id: str, subpath: str, request: Request, svc: InputService = Depends(inputs)
) -> Response:
    """Same as ``/hooks/{input_id}``; the rest of the path is matched by ``path_prefix`` routing rules."""
    return await _hook(request, input_id, subpath, svc)


for _method in HOOK_METHODS:
    hooks.add_api_route(
        "/hooks/{input_id}", webhook, methods=[_method], operation_id=f"webhooks_call_{_method.lower()}"
    )
    hooks.add_api_route(
        "/hooks/{input_id}/{subpath:path}",
        webhook_subpath,
        methods=[_method],
        operation_id=f"webhooks_call_subpath_{_method.lower()}",
    )


async def _preflight(input_id: str, svc: InputService) -> Response:
    ep = await svc.endpoint(input_id)
    if not ep.config.cors_enabled:
        return Response(status_code=405)
    return Response(status_code=204, headers=_CORS)


_PREFLIGHT: dict[int | str, dict[str, Any]] = {405: {"description": "CORS is not enabled on this input."}}


@hooks.options("/hooks/{input_id}", status_code=204, responses=_PREFLIGHT)
async def webhook_preflight(input_id: str, svc: InputService = Depends(inputs)) -> Response:
    """CORS preflight (answered only for inputs with ``cors_enabled``)."""
    return await _preflight(input_id, svc)


@hooks.options("/hooks/{input_id}/{subpath:path}", status_code=204, responses=_PREFLIGHT)
async def webhook_preflight_subpath(input_id: str, subpath: str, svc: InputService = Depends(inputs)) -> Response:
    """CORS preflight of a sub-path (answered only for inputs with ``cors_enabled``)."""
    return await _preflight(input_id, svc)
