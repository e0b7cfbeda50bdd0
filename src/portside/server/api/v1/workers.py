"""Workers door: ``/v1/workers`` (listing + the Portside Worker protocol) and ``/v1/capabilities``.

``install`` wires the whole workers area: the service, its background loops, the native task
routes (``api/v1/tasks.py``) and the holokai neuron dialect (``dialects/neuron.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from portside.server.auth import Principal
from portside.server.context import AppContext
from portside.server.deps import _ANONYMOUS_ADMIN, bearer_token, current_principal
from portside.server.errors import InvalidInput, Unauthenticated
from portside.server.workers.broker import ResultRequest
from portside.server.workers.capabilities import CAPABILITIES_DOC
from portside.server.workers.config import WorkersConfig
from portside.server.workers.domain import Frame, ResultOutcome
from portside.server.workers.frames import SSE_SEP, render_native
from portside.server.workers.service import WorkersService
from portside.server.workers.shutdown import on_server_shutdown
from portside.server.workers.tokens import TokenSigner, WorkerCaller
from portside.types.tasks import (
    CapabilityDefinition,
    CapabilityPage,
    HeartbeatReply,
    ResultsReply,
    TaskProgress,
    WorkerInfo,
    WorkerPage,
    WorkerRegistration,
)

router = APIRouter(prefix="/v1/workers", tags=["workers"])
capabilities_router = APIRouter(prefix="/v1/capabilities", tags=["capabilities"])


async def workers_service(request: Request) -> WorkersService:
    """FastAPI dependency: the workers service (async: no thread-pool hop per request)."""
    ctx: AppContext = request.app.state.ctx
    return ctx.service("workers", WorkersService)


def requires(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """Like ``deps.require(scope)`` (same authentication code), but without the thread-pool hop that
    the sync ``get_ctx`` dependency costs on every request: it matters on the task hot path."""

    async def dep(request: Request) -> Principal:
        principal = await current_principal(request, request.app.state.ctx)
        principal.require(scope)
        return principal

    return dep


def visible_owner(principal: Principal) -> str | None:
    """Admins see every owner's tasks and workers; others only their own."""
    return None if principal.has("admin") else principal.owner


async def worker_caller(request: Request) -> WorkerCaller:
    """The caller of a worker endpoint: an API key, or a worker token from ``/api/v1/auth/token``."""
    ctx: AppContext = request.app.state.ctx
    if not ctx.settings.auth_enabled:
        return WorkerCaller(principal=_ANONYMOUS_ADMIN)
    token = bearer_token(request)
    if not token:
        raise Unauthenticated("missing credentials: send 'Authorization: Bearer <API key or worker token>'")
    if token.startswith("sk_"):
        return WorkerCaller(principal=await ctx.keys.authenticate(token))
    signer = ctx.service("workers.tokens", TokenSigner)
    caller = signer.verify(token)
    await signer.ensure_key_active(caller.principal.key_id)
    return caller


# -- the event stream ---------------------------------------------------------------------------

CONNECTED = ServerSentEvent(comment="connected", sep=SSE_SEP).encode()  # sent first: the worker sees the stream is up
SHUTDOWN_GRACE_S = 2.0  # on server exit, time for our own ``disconnect`` frame before sse-starlette cancels


def _ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping", sep=SSE_SEP)


async def event_stream(
    svc: WorkersService, caller: WorkerCaller, worker_id: str, kind: str, render: Callable[[list[Frame]], bytes]
) -> EventSourceResponse:
    """An SSE response for one worker. The session is attached before the response starts (the
    worker registers as soon as it sees the headers) and always freed when the response ends.

    sse-starlette sends the keep-alive comments (every ``sse_ping_s``) and ends the body when the
    client disconnects; frames queued together are rendered as one chunk (the lease hot path)."""
    session = await svc.broker.open_stream(caller, worker_id, kind)

    async def body() -> AsyncIterator[bytes]:
        yield CONNECTED
        try:
            while True:
                pending: list[Frame | None] = [await session.outbox.get()]
                while not session.outbox.empty():
                    pending.append(session.outbox.get_nowait())
                frames: list[Frame] = []
                end = False
                for i, frame in enumerate(pending):
                    if frame is None:  # end of stream; anything after it stays queued
                        end = True
                        for rest in pending[i + 1 :]:
                            session.outbox.put_nowait(rest)
                        break
                    frames.append(frame)
                if frames:
                    yield render(frames)
                if end:
                    return
        finally:
            with anyio.CancelScope(shield=True):
                await svc.broker.close_stream(session)

    async def close() -> None:
        await svc.broker.close_stream(session)

    return _SessionStream(body(), close, ping_s=svc.config.sse_ping_s)


class _SessionStream(EventSourceResponse):
    """An event stream that runs ``on_close`` however it ends (even if its body never started)."""

    def __init__(
        self, content: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]], *, ping_s: float
    ) -> None:
        super().__init__(
            content,
            headers={"Cache-Control": "no-store"},
            ping=ping_s,
            ping_message_factory=_ping,
            sep=SSE_SEP,
            shutdown_grace_period=SHUTDOWN_GRACE_S,
        )
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._on_close()


@router.get("/{worker_id}/events")
async def worker_events(
    worker_id: str, caller: WorkerCaller = Depends(worker_caller), svc: WorkersService = Depends(workers_service)
) -> EventSourceResponse:
    """The Portside Worker event stream: ``registered``, ``leases``, ``cancel``, ``disconnect``."""
    ttl = int(svc.config.lease_ttl_s * 1000)
    beat = int(svc.config.heartbeat_interval_s * 1000)
    return await event_stream(
        svc, caller, worker_id, "portside", lambda frames: render_native(frames, lease_ttl_ms=ttl, heartbeat_ms=beat)
    )


# -- the Portside Worker protocol ---------------------------------------------------------------


#: ``protocolVersion``: any ``1.x.y`` (``workers.broker``; its own code), for the document.
PROTOCOL_DOC: dict[str, Any] = {"type": "string", "pattern": r"^v?0*1(\.[0-9A-Za-z.+-]*)?$"}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RegisterBody(_Body):
    protocol_version: str = Field(
        default="1.0.0", alias="protocolVersion", max_length=32, json_schema_extra=PROTOCOL_DOC
    )
    capabilities: list[Any] = Field(json_schema_extra=CAPABILITIES_DOC)  # the service's rules and codes
    labels: dict[str, Any] = Field(default_factory=dict)


#: Heartbeat ``inFlight`` entries: lease ids or ``{"leaseId": ...}`` objects (``lease_ids_of``).
IN_FLIGHT_DOC: dict[str, Any] = {
    "items": {
        "anyOf": [
            {"type": "string"},
            {"type": "object", "properties": {"leaseId": {"type": "string"}}, "required": ["leaseId"]},
        ]
    }
}


class HeartbeatBody(_Body):
    in_flight: list[Any] = Field(default_factory=list, alias="inFlight", json_schema_extra=IN_FLIGHT_DOC)


class ResultItem(_Body):
    lease_id: str = Field(alias="leaseId", min_length=1, max_length=64)
    type: str = Field(pattern="^(ack|nack)$")
    output: Any = None
    kind: str | None = None
    reason: str = Field(default="", max_length=10_000)
    code: str | None = Field(default=None, max_length=200)
    details: Any = None
    traceparent: str | None = Field(default=None, max_length=128)


class ResultsBody(_Body):
    results: list[ResultItem] = Field(max_length=1000)


class ProgressBody(_Body):
    lease_id: str = Field(alias="leaseId", min_length=1, max_length=64)
    percent: float | None = Field(default=None, json_schema_extra={"minimum": 0, "maximum": 100})
    message: str | None = None
    data: Any = None


def register_response(svc: WorkersService, result: Any) -> dict[str, Any]:
    from portside.server.clock import isoformat

    return {
        "workerId": result.worker_id,
        "sessionId": result.session_id,
        "protocolVersion": result.protocol_version,
        "capabilities": [c.stored() for c in result.capabilities],
        "acceptedAt": isoformat(result.accepted_at),
        "leaseTtlMs": result.lease_ttl_ms,
        "heartbeatIntervalMs": result.heartbeat_interval_ms,
    }


def lease_ids_of(items: list[Any]) -> list[str]:
    """Heartbeat in-flight entries: lease id strings or ``{"leaseId": ...}`` objects."""
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get("leaseId"), str):
            out.append(item["leaseId"])
        else:
            raise InvalidInput("inFlight entries must be lease ids or {leaseId} objects", code="validation_error")
    return out


def outcome_dict(outcome: ResultOutcome) -> dict[str, Any]:
    from portside.server.errors import DomainError

    out: dict[str, Any] = {"leaseId": outcome.lease_id, "accepted": outcome.accepted}
    if outcome.task_id:
        out["taskId"] = outcome.task_id
    if outcome.task_status:
        out["status"] = outcome.task_status
    if outcome.duplicate:
        out["duplicate"] = True
    if isinstance(outcome.error, DomainError):
        out["error"] = {
            "code": outcome.error.code,
            "message": outcome.error.message,
            "status": outcome.error.status,
            "details": outcome.error.details,
        }
    return out


@router.post("/{worker_id}/register", response_model=WorkerRegistration)
async def register_worker(
    worker_id: str,
    body: RegisterBody,
    caller: WorkerCaller = Depends(worker_caller),
    svc: WorkersService = Depends(workers_service),
) -> dict[str, Any]:
    """Register (or re-register) a worker's capabilities with their schemas."""
    result = await svc.broker.register(
        caller,
        worker_id,
        kind="portside",
        protocol_version=body.protocol_version,
        capabilities=body.capabilities,
        labels=body.labels,
    )
    return register_response(svc, result)


@router.post("/{worker_id}/heartbeat", response_model=HeartbeatReply)
async def worker_heartbeat(
    worker_id: str,
    body: HeartbeatBody,
    caller: WorkerCaller = Depends(worker_caller),
    svc: WorkersService = Depends(workers_service),
) -> dict[str, Any]:
    """Keep the worker's leases alive; ``ended`` lists leases it should stop working on."""
    from portside.server.clock import isoformat

    out = await svc.broker.heartbeat(caller, worker_id, lease_ids_of(body.in_flight))
    return {"renewed": out["renewed"], "ended": out["ended"], "serverTime": isoformat(out["server_time"])}


@router.post("/{worker_id}/results", response_model=ResultsReply)
async def worker_results(
    worker_id: str,
    body: ResultsBody,
    caller: WorkerCaller = Depends(worker_caller),
    svc: WorkersService = Depends(workers_service),
) -> JSONResponse:
    """Acks and nacks, many per request; each item reports its own outcome."""
    svc.broker.check_worker(caller, worker_id)
    requests = [
        ResultRequest(
            lease_id=item.lease_id,
            caller=caller,
            worker_id=worker_id,
            ok=item.type == "ack",
            output=item.output,
            kind=item.kind,
            reason=item.reason,
            code=item.code,
            details=item.details,
            traceparent=item.traceparent,
        )
        for item in body.results
    ]
    outcomes = await svc.broker.results(requests)
    return JSONResponse({"results": [outcome_dict(o) for o in outcomes]})


@router.post("/{worker_id}/progress", response_model=TaskProgress, response_model_exclude_unset=True)
async def worker_progress(
    worker_id: str,
    body: ProgressBody,
    caller: WorkerCaller = Depends(worker_caller),
    svc: WorkersService = Depends(workers_service),
) -> dict[str, Any]:
    svc.broker.check_worker(caller, worker_id)
    entry = await svc.broker.progress(
        caller, worker_id, body.lease_id, percent=body.percent, message=body.message, data=body.data
    )
    return entry.to_dict()


# -- listing ------------------------------------------------------------------------------------


@router.get("", response_model=WorkerPage, response_model_exclude_unset=True)
async def list_workers(
    principal: Principal = Depends(requires("read")), svc: WorkersService = Depends(workers_service)
) -> dict[str, Any]:
    """Registered workers with their status, capabilities and active leases."""
    items = [w.to_dict() for w in await svc.list_workers(owner=visible_owner(principal))]
    return {"items": items, "total": len(items)}


@router.get("/{worker_id}", response_model=WorkerInfo, response_model_exclude_unset=True)
async def get_worker(
    worker_id: str, principal: Principal = Depends(requires("read")), svc: WorkersService = Depends(workers_service)
) -> dict[str, Any]:
    return (await svc.get_worker(worker_id, owner=visible_owner(principal))).to_dict()


# -- capability definitions ---------------------------------------------------------------------


class CapabilityBody(_Body):
    input_schema: Any = None
    output_schema: Any = None
    description: str = Field(default="", max_length=2000)
    max_attempts: int | None = None
    lease_ttl_ms: int | None = None


@capabilities_router.get("", response_model=CapabilityPage, response_model_exclude_unset=True)
async def list_capabilities(
    _: Principal = Depends(requires("read")), svc: WorkersService = Depends(workers_service)
) -> dict[str, Any]:
    items = [c.to_dict() for c in await svc.capabilities.list()]
    return {"items": items, "total": len(items)}


@capabilities_router.get("/{ctype:path}", response_model=CapabilityDefinition, response_model_exclude_unset=True)
async def get_capability(
    ctype: str, _: Principal = Depends(requires("read")), svc: WorkersService = Depends(workers_service)
) -> dict[str, Any]:
    return (await svc.capabilities.require(ctype)).to_dict()


@capabilities_router.put("/{ctype:path}", response_model=CapabilityDefinition, response_model_exclude_unset=True)
async def put_capability(
    ctype: str,
    body: CapabilityBody,
    principal: Principal = Depends(requires("write")),
    svc: WorkersService = Depends(workers_service),
) -> dict[str, Any]:
    """Define a capability type's input/output JSON Schemas and retry policy."""
    found = await svc.capabilities.put(
        principal,
        ctype,
        input_schema=body.input_schema,
        output_schema=body.output_schema,
        description=body.description,
        max_attempts=body.max_attempts,
        lease_ttl_ms=body.lease_ttl_ms,
    )
    svc.notifier.publish("capability", {"type": ctype})
    return found.to_dict()


# -- wiring -------------------------------------------------------------------------------------


def install(app: FastAPI, ctx: AppContext) -> None:
    """Build the workers service and mount its doors (native, tasks, neuron)."""
    from portside.server.api.v1 import tasks
    from portside.server.dialects import neuron

    config = WorkersConfig()
    svc = WorkersService(ctx.db, config)
    signer = TokenSigner(ctx.db, ctx.settings.secret_key)
    ctx.services["workers"] = svc
    ctx.services["workers.tokens"] = signer
    svc.notifier.subscribe(
        lambda event, payload: svc.capabilities.invalidate(payload.get("type")) if event == "capability" else None
    )

    async def start() -> None:
        await signer.load()
        await svc.start()

    async def stop() -> None:
        await svc.stop()

    ctx.on_start.append(start)
    ctx.on_stop.append(stop)
    on_server_shutdown(app, svc.broker.close_streams)
    app.include_router(router)
    app.include_router(capabilities_router)
    tasks.install_routes(app)
    neuron.install_routes(app)
