"""The browser capability of sandboxes: agent-browser commands, batches, traces and browser skills.

shipyard-neo-sdk 0.2.0's ``sandbox.browser`` speaks exactly these routes and shapes (docs/wire/shipyard.md §2.3).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import Response
from pydantic import BaseModel, Field

from portside.server.auth import Principal
from portside.server.context import AppContext, get_ctx
from portside.server.deps import require
from portside.server.sandboxes.browser import (
    BrowserBatchExecResult,
    BrowserExecResult,
    BrowserService,
    BrowserSkillRunResult,
    BrowserTrace,
)
from portside.server.sandboxes.service import SandboxService

router = APIRouter(prefix="/v1/sandboxes/{sandbox_id}/browser", tags=["browser"])
Reader = Depends(require("read"))
Writer = Depends(require("write"))
BROWSER_PROFILE = "browser-python"


def svc(ctx: AppContext = Depends(get_ctx)) -> BrowserService:
    return ctx.service("browser", BrowserService)


class BrowserExec(BaseModel):
    cmd: str
    timeout: int = Field(default=30, ge=1, le=300)
    description: str | None = None
    tags: str | None = None
    learn: bool = False
    include_trace: bool = False


class BrowserBatch(BaseModel):
    commands: list[str] = Field(..., min_length=1, json_schema_extra={"items": {"type": "string", "minLength": 1}})
    timeout: int = Field(default=60, ge=1, le=600)
    stop_on_error: bool = True
    description: str | None = None
    tags: str | None = None
    learn: bool = False
    include_trace: bool = False


class BrowserSkillRun(BaseModel):
    timeout: int = Field(default=60, ge=1, le=600)
    stop_on_error: bool = True
    include_trace: bool = False
    description: str | None = None
    tags: str | None = None


def _json(model: BaseModel) -> Response:
    return Response(content=model.model_dump_json(), media_type="application/json")


@router.post("/exec", response_model=BrowserExecResult)
async def browser_exec(
    sandbox_id: str, body: BrowserExec, s: BrowserService = Depends(svc), caller: Principal = Writer
) -> Response:
    """Run one agent-browser command (``open URL``, ``snapshot``, ``click @e1`` ...); failures are 200s."""
    return _json(
        await s.exec(
            caller, sandbox_id, body.cmd, timeout=body.timeout, description=body.description, tags=body.tags,
            learn=body.learn, include_trace=body.include_trace,
        )
    )  # fmt: skip


@router.post("/exec_batch", response_model=BrowserBatchExecResult)
async def browser_exec_batch(
    sandbox_id: str, body: BrowserBatch, s: BrowserService = Depends(svc), caller: Principal = Writer
) -> Response:
    """Run commands in order within one overall timeout; per-step results."""
    return _json(
        await s.exec_batch(
            caller, sandbox_id, body.commands, timeout=body.timeout, stop_on_error=body.stop_on_error,
            description=body.description, tags=body.tags, learn=body.learn, include_trace=body.include_trace,
        )
    )  # fmt: skip


@router.post("/skills/{skill_key}/run", response_model=BrowserSkillRunResult)
async def browser_run_skill(
    sandbox_id: str,
    skill_key: str,
    body: BrowserSkillRun,
    s: BrowserService = Depends(svc),
    ctx: AppContext = Depends(get_ctx),
    caller: Principal = Writer,
) -> Response:
    """Replay the active release of a browser skill in this sandbox (recorded as release evidence)."""
    from portside.server.skills.service import SkillService

    skills = ctx.service("skills", SkillService)
    return _json(
        await s.run_skill(
            caller, sandbox_id, skill_key, skills, timeout=body.timeout, stop_on_error=body.stop_on_error,
            include_trace=body.include_trace, description=body.description, tags=body.tags,
        )
    )  # fmt: skip


@router.get("/traces/{trace_ref:path}", response_model=BrowserTrace)
async def browser_trace(
    sandbox_id: str, trace_ref: str, s: BrowserService = Depends(svc), caller: Principal = Reader
) -> BrowserTrace:
    """A stored trace by its ``trace_ref`` (the workspace path of its trace.json, or its id)."""
    return await s.read_trace(caller, sandbox_id, trace_ref)


def install(app: FastAPI, ctx: AppContext) -> None:
    """Build the browser service on top of the sandbox service and mount the routes."""
    settings = ctx.settings
    service = BrowserService(ctx.service("sandboxes", SandboxService), executable=settings.browser_executable)
    allow = [h.strip() for h in settings.browser_egress_allow.split(",") if h.strip()]
    if allow:
        service.set_egress(BROWSER_PROFILE, allow)
    ctx.services["browser"] = service

    async def _stop() -> None:
        await service.close()

    ctx.on_stop.append(_stop)
    app.include_router(router)
