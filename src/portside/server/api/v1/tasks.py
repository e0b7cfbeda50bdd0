"""Tasks door: ``/v1/tasks`` — submit, get, wait, cancel and list tasks for typed capabilities."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from portside.server.api.v1.workers import requires, visible_owner, workers_service
from portside.server.auth import Principal
from portside.server.errors import Forbidden
from portside.server.workers.capabilities import CAPABILITY_TYPE_RE
from portside.server.workers.service import TaskSpec, WorkersService
from portside.types.tasks import LeasePage, Task, TaskPage, TaskProgressPage

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    capability: str = Field(
        max_length=200,
        description="A namespaced capability type: {owner}/{package}[/{name}][.{variant}].",
        json_schema_extra={"pattern": CAPABILITY_TYPE_RE.pattern},  # enforced by the service (its own code)
    )
    input: Any = None
    on_behalf_of: str | None = Field(default=None, max_length=200, json_schema_extra={"minLength": 1})
    idempotency_key: str | None = Field(default=None, max_length=255, json_schema_extra={"minLength": 1})
    timeout_s: float | None = Field(default=None, json_schema_extra={"exclusiveMinimum": 0, "maximum": 2_592_000})
    max_attempts: int | None = Field(default=None, json_schema_extra={"minimum": 1, "maximum": 100})
    metadata: dict[str, Any] = Field(default_factory=dict)
    workflow_id: str | None = Field(default=None, max_length=200)

    def spec(self) -> TaskSpec:
        return TaskSpec(
            capability=self.capability,
            input=self.input,
            on_behalf_of=self.on_behalf_of,
            idempotency_key=self.idempotency_key,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            metadata=self.metadata,
            workflow_id=self.workflow_id,
        )


class TaskBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[TaskCreate] = Field(min_length=1, max_length=1000)


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="cancelled by the submitter", max_length=2000)


def _check_on_behalf_of(principal: Principal, on_behalf_of: str | None) -> None:
    """Acting for another user needs an admin key; anyone may act for themselves."""
    if on_behalf_of is not None and on_behalf_of != principal.owner and not principal.has("admin"):
        raise Forbidden(
            f"only an admin key may submit tasks on behalf of {on_behalf_of}",
            code="on_behalf_of_not_allowed",
            details={"on_behalf_of": on_behalf_of},
        )


@router.post("", status_code=201, response_model=Task)
async def submit_task(
    body: TaskCreate, principal: Principal = Depends(requires("write")), svc: WorkersService = Depends(workers_service)
) -> JSONResponse:
    """Queue a task; 201 with the task. The same ``idempotency_key`` returns the first task."""
    _check_on_behalf_of(principal, body.on_behalf_of)
    spec = body.spec()
    task = await svc.submit_task(
        spec.capability,
        spec.input,
        spec.on_behalf_of,
        spec.idempotency_key,
        spec.timeout_s,
        owner=principal.owner,
        max_attempts=spec.max_attempts,
        metadata=spec.metadata,
        workflow_id=spec.workflow_id,
    )
    return JSONResponse(task.to_dict(), status_code=201)


@router.post("/batch", status_code=201, response_model=TaskPage)
async def submit_batch(
    body: TaskBatch, principal: Principal = Depends(requires("write")), svc: WorkersService = Depends(workers_service)
) -> JSONResponse:
    """Queue up to 1000 tasks at once (all validated before any is stored)."""
    for item in body.tasks:
        _check_on_behalf_of(principal, item.on_behalf_of)
    tasks = await svc.submit_tasks([item.spec() for item in body.tasks], owner=principal.owner)
    return JSONResponse({"items": [t.to_dict() for t in tasks], "total": len(tasks)}, status_code=201)


@router.get("", response_model=TaskPage, response_model_exclude_unset=True)
async def list_tasks(
    status: str | None = None,
    capability: str | None = Query(default=None, max_length=200),
    worker_id: str | None = Query(default=None, max_length=200),
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=64),
    principal: Principal = Depends(requires("read")),
    svc: WorkersService = Depends(workers_service),
) -> dict[str, Any]:
    """Tasks, newest first; page with ``cursor=<next_cursor>``."""
    tasks, next_cursor = await svc.list_tasks(
        owner=visible_owner(principal),
        status=status,
        capability=capability,
        worker_id=worker_id,
        limit=limit,
        cursor=cursor,
    )
    return {"items": [t.to_dict() for t in tasks], "next_cursor": next_cursor}


@router.get("/counts")
async def task_counts(
    capability: str | None = Query(default=None, max_length=200),
    principal: Principal = Depends(requires("read")),
    svc: WorkersService = Depends(workers_service),
) -> dict[str, int]:
    """How many tasks are in each status."""
    return await svc.task_counts(owner=visible_owner(principal), capability=capability)


@router.get("/{task_id}", response_model=Task)
async def get_task(
    task_id: str, principal: Principal = Depends(requires("read")), svc: WorkersService = Depends(workers_service)
) -> JSONResponse:
    return JSONResponse((await svc.get_task(task_id, owner=visible_owner(principal))).to_dict())


@router.get("/{task_id}/wait", response_model=Task)
async def wait_task(
    task_id: str,
    timeout: float = Query(default=30.0, ge=0),
    principal: Principal = Depends(requires("read")),
    svc: WorkersService = Depends(workers_service),
) -> JSONResponse:
    """Long-poll until the task is done (at most ``timeout`` seconds); returns it either way."""
    timeout = min(timeout, svc.config.max_wait_s)
    task = await svc.wait_task(task_id, timeout, owner=visible_owner(principal))
    return JSONResponse(task.to_dict())


@router.post("/{task_id}/cancel", response_model=Task, response_model_exclude_unset=True)
async def cancel_task(
    task_id: str,
    body: CancelBody | None = None,
    principal: Principal = Depends(requires("write")),
    svc: WorkersService = Depends(workers_service),
) -> dict[str, Any]:
    """Cancel a task; a running one's worker gets a ``cancel`` event and its lease ends."""
    reason = body.reason if body is not None else "cancelled by the submitter"
    return (await svc.cancel_task(task_id, owner=visible_owner(principal), reason=reason)).to_dict()


@router.get("/{task_id}/progress", response_model=TaskProgressPage, response_model_exclude_unset=True)
async def task_progress(
    task_id: str, principal: Principal = Depends(requires("read")), svc: WorkersService = Depends(workers_service)
) -> dict[str, Any]:
    items = [p.to_dict() for p in await svc.task_progress(task_id, owner=visible_owner(principal))]
    return {"items": items, "total": len(items)}


@router.get("/{task_id}/leases", response_model=LeasePage, response_model_exclude_unset=True)
async def task_leases(
    task_id: str, principal: Principal = Depends(requires("read")), svc: WorkersService = Depends(workers_service)
) -> dict[str, Any]:
    items = [lease.to_dict() for lease in await svc.task_leases(task_id, owner=visible_owner(principal))]
    return {"items": items, "total": len(items)}


def install_routes(app: FastAPI) -> None:
    app.include_router(router)
