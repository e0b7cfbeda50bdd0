"""Holokai neuron dialect: the BigBrain gateway protocol of holokai-neuron-sdk 0.1.1.

``GET /neuron/events?neuronId=`` (SSE), ``POST /neuron/{register, update-capability, heartbeat,
ack, nack, progress}``, and ``POST /api/v1/auth/token`` which trades an API key for the short-lived
bearer token the SDK's ``auth`` callback returns. Every route calls the workers broker; this module
only translates frames.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sse_starlette import EventSourceResponse

from portside.server.api.v1.workers import (
    IN_FLIGHT_DOC,
    PROTOCOL_DOC,
    event_stream,
    lease_ids_of,
    worker_caller,
    workers_service,
)
from portside.server.api.wire import WireRoute
from portside.server.clock import isoformat
from portside.server.context import AppContext, get_ctx
from portside.server.deps import bearer_token
from portside.server.errors import InvalidInput, Unauthenticated
from portside.server.workers.broker import ResultRequest
from portside.server.workers.capabilities import CAPABILITIES_DOC, CAPABILITY_DOC, WORKER_ID_RE, check_worker_id
from portside.server.workers.config import PROTOCOL_VERSION
from portside.server.workers.domain import RegisteredFrame
from portside.server.workers.frames import neuron_frame, render_neuron
from portside.server.workers.neuron_schemas import (
    NeuronCapabilityUpdated,
    NeuronHeartbeat,
    NeuronLeaseOutcome,
    NeuronOk,
    NeuronRegistered,
    NeuronToken,
)
from portside.server.workers.service import WorkersService
from portside.server.workers.tokens import TokenSigner, WorkerCaller

router = APIRouter(prefix="/neuron", tags=["neuron"], route_class=WireRoute)
auth_router = APIRouter(prefix="/api/v1/auth", tags=["neuron"], route_class=WireRoute)


class _Frame(BaseModel):
    """Frames are parsed leniently (unknown keys ignored); the broker validates the content."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class RegisterIn(_Frame):
    model_config = ConfigDict(json_schema_extra={"required": ["neuronId", "protocolVersion", "capabilities"]})

    neuron_id: str = Field(alias="neuronId", json_schema_extra={"pattern": WORKER_ID_RE.pattern})
    protocol_version: Any = Field(default=None, alias="protocolVersion", json_schema_extra=PROTOCOL_DOC)
    capabilities: Any = Field(default=None, json_schema_extra={"type": "array", **CAPABILITIES_DOC})


class UpdateCapabilityIn(_Frame):
    model_config = ConfigDict(json_schema_extra={"required": ["neuronId", "capability"]})

    neuron_id: str = Field(alias="neuronId", json_schema_extra={"pattern": WORKER_ID_RE.pattern})
    capability: Any = Field(default=None, json_schema_extra=CAPABILITY_DOC)


class HeartbeatIn(_Frame):
    neuron_id: str = Field(alias="neuronId", json_schema_extra={"pattern": WORKER_ID_RE.pattern})
    in_flight: list[Any] = Field(default_factory=list, alias="inFlight", json_schema_extra=IN_FLIGHT_DOC)


class AckIn(_Frame):
    lease_id: str = Field(alias="leaseId", min_length=1, max_length=64)
    output: Any = None


class NackIn(_Frame):
    lease_id: str = Field(alias="leaseId", min_length=1, max_length=64)
    kind: str = Field(json_schema_extra={"enum": ["retryable", "terminal", "schema-mismatch", "cancelled"]})
    reason: str = Field(default="", max_length=10_000)
    code: str | None = Field(default=None, max_length=200)
    details: Any = None


class ProgressIn(_Frame):
    lease_id: str = Field(alias="leaseId", min_length=1, max_length=64)
    percent: float | None = Field(default=None, json_schema_extra={"minimum": 0, "maximum": 100})
    message: str | None = None
    data: Any = None


class TokenIn(_Frame):
    neuron_id: str | None = Field(default=None, alias="neuronId")
    ttl_seconds: int | None = Field(default=None, alias="ttlSeconds", ge=30, le=86_400)
    api_key: str | None = Field(default=None, alias="apiKey")


@router.get("/events")
async def events(
    neuron_id: str = Query(alias="neuronId", min_length=1, max_length=200),
    caller: WorkerCaller = Depends(worker_caller),
    svc: WorkersService = Depends(workers_service),
) -> EventSourceResponse:
    """The neuron's SSE stream: ``registered``, ``lease``, ``cancel``, ``disconnect`` frames."""
    return await event_stream(svc, caller, neuron_id, "neuron", render_neuron)


@router.post("/register", response_model=NeuronRegistered)
async def register(
    frame: RegisterIn, caller: WorkerCaller = Depends(worker_caller), svc: WorkersService = Depends(workers_service)
) -> dict[str, Any]:
    """Register capabilities; protocol ``1.x`` is accepted. Answers with the ``registered`` frame."""
    result = await svc.broker.register(
        caller,
        frame.neuron_id,
        kind="neuron",
        protocol_version=frame.protocol_version,
        capabilities=frame.capabilities,
    )
    body = neuron_frame(
        RegisteredFrame(session_id=result.session_id, capabilities=result.capabilities, accepted_at=result.accepted_at)
    )
    return {**body, "protocolVersion": result.protocol_version}


@router.post("/update-capability", response_model=NeuronCapabilityUpdated)
async def update_capability(
    frame: UpdateCapabilityIn,
    caller: WorkerCaller = Depends(worker_caller),
    svc: WorkersService = Depends(workers_service),
) -> dict[str, Any]:
    spec = await svc.broker.update_capability(caller, frame.neuron_id, frame.capability)
    return {"ok": True, "capability": spec.wire()}


@router.post("/heartbeat", response_model=NeuronHeartbeat)
async def heartbeat(
    frame: HeartbeatIn, caller: WorkerCaller = Depends(worker_caller), svc: WorkersService = Depends(workers_service)
) -> dict[str, Any]:
    out = await svc.broker.heartbeat(caller, frame.neuron_id, lease_ids_of(frame.in_flight))
    return {"ok": True, "renewed": out["renewed"], "ended": out["ended"], "serverTime": isoformat(out["server_time"])}


@router.post("/ack", response_model=NeuronLeaseOutcome)
async def ack(
    frame: AckIn, caller: WorkerCaller = Depends(worker_caller), svc: WorkersService = Depends(workers_service)
) -> JSONResponse:
    """Complete a lease with its output (checked against the capability's output schema)."""
    caller.principal.require("worker")
    outcome = await svc.broker.result(
        ResultRequest(lease_id=frame.lease_id, caller=caller, worker_id=None, ok=True, output=frame.output)
    )
    return JSONResponse(
        {"ok": True, "leaseId": outcome.lease_id, "taskId": outcome.task_id, "status": outcome.task_status}
    )


@router.post("/nack", response_model=NeuronLeaseOutcome)
async def nack(
    frame: NackIn, caller: WorkerCaller = Depends(worker_caller), svc: WorkersService = Depends(workers_service)
) -> JSONResponse:
    """Fail a lease: ``retryable`` requeues with backoff, ``terminal``/``schema-mismatch`` fail the task,
    ``cancelled`` confirms a cancel (or, unrequested, requeues)."""
    caller.principal.require("worker")
    outcome = await svc.broker.result(
        ResultRequest(
            lease_id=frame.lease_id,
            caller=caller,
            worker_id=None,
            ok=False,
            kind=frame.kind,
            reason=frame.reason,
            code=frame.code,
            details=frame.details,
        )
    )
    return JSONResponse(
        {"ok": True, "leaseId": outcome.lease_id, "taskId": outcome.task_id, "status": outcome.task_status}
    )


@router.post("/progress", response_model=NeuronOk)
async def progress(
    frame: ProgressIn, caller: WorkerCaller = Depends(worker_caller), svc: WorkersService = Depends(workers_service)
) -> dict[str, Any]:
    caller.principal.require("worker")
    await svc.broker.progress(
        caller, None, frame.lease_id, percent=frame.percent, message=frame.message, data=frame.data
    )
    return {"ok": True}


@auth_router.post("/token", response_model=NeuronToken)
async def issue_token(request: Request, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    """Trade an API key (``Authorization: Bearer sk_...`` or ``{"apiKey"}``) for a worker token.

    Optional ``{"neuronId"}`` binds the token to one worker id; ``{"ttlSeconds"}`` shortens or
    lengthens it (30 s .. 24 h). A valid worker token may also be sent to get a fresh one.
    """
    raw = await request.body()
    try:
        body = TokenIn.model_validate_json(raw) if raw.strip() else TokenIn()
    except ValidationError as exc:
        raise InvalidInput(f"invalid token request: {exc.errors()[0]['msg']}", code="validation_error") from exc
    svc = ctx.service("workers", WorkersService)
    signer = ctx.service("workers.tokens", TokenSigner)
    credential = body.api_key or bearer_token(request)
    if not credential:
        raise Unauthenticated("send an API key as 'Authorization: Bearer sk_...' to get a worker token")
    if credential.startswith("sk_"):
        caller = WorkerCaller(principal=await ctx.keys.authenticate(credential))
    else:
        caller = signer.verify(credential)
        await signer.ensure_key_active(caller.principal.key_id)
    caller.principal.require("worker")
    neuron_id = body.neuron_id or caller.bound_worker_id
    if neuron_id is not None:
        check_worker_id(neuron_id)
        if caller.bound_worker_id is not None and caller.bound_worker_id != neuron_id:
            raise InvalidInput("a bound token cannot be exchanged for another worker id", code="worker_mismatch")
    ttl = body.ttl_seconds or svc.config.token_ttl_s
    token, exp = signer.mint(caller.principal, worker_id=neuron_id, ttl_s=ttl)
    return {
        "token": token,
        "accessToken": token,
        "access_token": token,
        "tokenType": "Bearer",
        "token_type": "bearer",
        "expiresIn": ttl,
        "expires_in": ttl,
        "expiresAt": isoformat_ts(exp),
        "neuronId": neuron_id,
        "protocolVersion": PROTOCOL_VERSION,
    }


def isoformat_ts(unix: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


def install_routes(app: FastAPI) -> None:
    """Mount the neuron gateway routes (called by the workers area)."""
    app.include_router(router)
    app.include_router(auth_router)
