"""Sandboxes, profiles, cargo, files and history: the native API, which is also the Bay API.

shipyard-neo-sdk 0.2.0 speaks exactly these routes and shapes (see docs/wire/shipyard.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from portside.server.auth import Principal
from portside.server.context import AppContext
from portside.server.deps import require
from portside.server.errors import InvalidInput, PayloadTooLarge, Unavailable
from portside.server.sandboxes import files
from portside.server.sandboxes.drivers import SandboxDriver, create_driver
from portside.server.sandboxes.drivers.pool import WarmPool
from portside.server.sandboxes.drivers.unavailable import UnavailableDriver
from portside.server.sandboxes.drivers.volumes import open_volumes
from portside.server.sandboxes.profiles import ProfileRegistry
from portside.server.sandboxes.runtime import RuntimeManager
from portside.server.sandboxes.schemas import (
    CargoInfo,
    CargoList,
    ExecutionEntry,
    ExecutionList,
    FileInfo,
    HistoryQuery,
    PythonExecResult,
    SandboxInfo,
    SandboxList,
    ShellExecResult,
)
from portside.server.sandboxes.service import SandboxService
from portside.types.common import StatusReply
from portside.types.sandboxes import DirectoryListing, FileContent, FileWritten, ProfileList

log = logging.getLogger("portside.sandboxes")
router = APIRouter(prefix="/v1")
Reader = Depends(require("read"))
Writer = Depends(require("write"))


async def svc(request: Request) -> SandboxService:
    """The sandbox service (an async dependency: a sync one would cost a threadpool hop per request)."""
    ctx: AppContext = request.app.state.ctx
    return ctx.service("sandboxes", SandboxService)


class CreateSandbox(BaseModel):
    profile: str = "python-default"
    cargo_id: str | None = None
    ttl: int | None = Field(default=None, ge=0, description="Seconds; null or 0 means no expiry.")


class ExtendTTL(BaseModel):
    extend_by: int = Field(..., ge=1)


class PythonExec(BaseModel):
    code: str
    timeout: int = Field(default=30, ge=1, le=3600)
    include_code: bool = False
    description: str | None = None
    tags: str | None = None


class ShellExec(BaseModel):
    command: str
    timeout: int = Field(default=30, ge=1, le=3600)
    cwd: str | None = None
    include_code: bool = False
    description: str | None = None
    tags: str | None = None


class FileWrite(BaseModel):
    path: str
    content: str
    encoding: str = Field(default="utf-8", description="utf-8, or base64 for binary content.")


class Annotate(BaseModel):
    description: str | None = None
    tags: str | None = None
    notes: str | None = None


class CreateCargo(BaseModel):
    size_limit_mb: int | None = Field(default=None, ge=1, le=65536)


# ---------------------------------------------------------------- profiles


@router.get("/profiles", tags=["profiles"], response_model=ProfileList, response_model_exclude_unset=True)
async def list_profiles(
    detail: bool = False, s: SandboxService = Depends(svc), _: Principal = Reader
) -> dict[str, Any]:
    """The sandbox presets this server offers."""
    return {"items": [p.to_wire(detail=detail) for p in s.profiles.all()]}


# ---------------------------------------------------------------- sandboxes


@router.post("/sandboxes", status_code=201, response_model=SandboxInfo, tags=["sandboxes"])
async def create_sandbox(
    body: CreateSandbox | None = None, s: SandboxService = Depends(svc), caller: Principal = Writer
) -> SandboxInfo:
    body = body or CreateSandbox()
    return await s.create(caller, profile=body.profile, ttl=body.ttl, cargo_id=body.cargo_id)


@router.get("/sandboxes", response_model=SandboxList, tags=["sandboxes"])
async def list_sandboxes(
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
    status: str | None = None,
    s: SandboxService = Depends(svc),
    caller: Principal = Reader,
) -> SandboxList:
    return await s.list(caller, limit=limit, cursor=cursor, status=status)


@router.get("/sandboxes/{sandbox_id}", response_model=SandboxInfo, tags=["sandboxes"])
async def get_sandbox(sandbox_id: str, s: SandboxService = Depends(svc), caller: Principal = Reader) -> SandboxInfo:
    return await s.get(caller, sandbox_id)


@router.post("/sandboxes/{sandbox_id}/stop", tags=["sandboxes"], response_model=StatusReply)
async def stop_sandbox(sandbox_id: str, s: SandboxService = Depends(svc), caller: Principal = Writer) -> dict[str, str]:
    """Stop the session (workspace kept); 200 ``{"status": "stopped"}`` as Bay."""
    await s.stop(caller, sandbox_id)
    return {"status": "stopped"}


@router.delete("/sandboxes/{sandbox_id}", tags=["sandboxes"], status_code=204, response_class=Response)
async def delete_sandbox(sandbox_id: str, s: SandboxService = Depends(svc), caller: Principal = Writer) -> Response:
    await s.delete(caller, sandbox_id)
    return Response(status_code=204)


@router.post("/sandboxes/{sandbox_id}/extend_ttl", response_model=SandboxInfo, tags=["sandboxes"])
async def extend_ttl(
    sandbox_id: str, body: ExtendTTL, s: SandboxService = Depends(svc), caller: Principal = Writer
) -> SandboxInfo:
    return await s.extend_ttl(caller, sandbox_id, body.extend_by)


@router.post("/sandboxes/{sandbox_id}/keepalive", response_model=SandboxInfo, tags=["sandboxes"])
async def keepalive(sandbox_id: str, s: SandboxService = Depends(svc), caller: Principal = Writer) -> SandboxInfo:
    return await s.keepalive(caller, sandbox_id)


# ---------------------------------------------------------------- execution


def _json(model: BaseModel) -> Response:
    """Serialize once: returning a Response skips FastAPI's second validation of the result (hot path)."""
    return Response(content=model.model_dump_json(), media_type="application/json")


@router.post("/sandboxes/{sandbox_id}/python/exec", response_model=PythonExecResult, tags=["sandboxes"])
async def exec_python(
    sandbox_id: str, body: PythonExec, s: SandboxService = Depends(svc), caller: Principal = Writer
) -> Response:
    """Run Python in the sandbox's kernel; a failing program is a 200 with ``success: false``."""
    result = await s.exec_python(
        caller,
        sandbox_id,
        body.code,
        timeout=body.timeout,
        include_code=body.include_code,
        description=body.description,
        tags=body.tags,
    )
    return _json(result)


@router.post("/sandboxes/{sandbox_id}/shell/exec", response_model=ShellExecResult, tags=["sandboxes"])
async def exec_shell(
    sandbox_id: str, body: ShellExec, s: SandboxService = Depends(svc), caller: Principal = Writer
) -> Response:
    """Run a shell command in the workspace; a non-zero exit is a 200 with ``success: false``."""
    result = await s.exec_shell(
        caller,
        sandbox_id,
        body.command,
        cwd=body.cwd,
        timeout=body.timeout,
        include_code=body.include_code,
        description=body.description,
        tags=body.tags,
    )
    return _json(result)


# ---------------------------------------------------------------- files


async def _fs(sandbox_id: str, s: SandboxService, caller: Principal) -> tuple[Any, int]:
    return await s.files_of(caller, sandbox_id)


async def _blocking(fn: Any, *args: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args)
    except Exception as exc:  # OS errors on user paths become clean 4xx
        raise files.ensure_error_free(exc) from exc


@router.get("/sandboxes/{sandbox_id}/filesystem/files", tags=["files"], response_model=FileContent)
async def read_file(
    sandbox_id: str, path: str, s: SandboxService = Depends(svc), caller: Principal = Reader
) -> dict[str, Any]:
    """A text file's content (UTF-8; undecodable bytes are replaced — use download for binary)."""
    ws, _ = await _fs(sandbox_id, s, caller)
    data: bytes = await _blocking(files.read_bytes, ws, path, s.max_file_bytes)
    return {"path": path, "content": data.decode("utf-8", errors="replace"), "size": len(data)}


@router.put("/sandboxes/{sandbox_id}/filesystem/files", tags=["files"], response_model=FileWritten)
async def write_file(
    sandbox_id: str, body: FileWrite, s: SandboxService = Depends(svc), caller: Principal = Writer
) -> dict[str, Any]:
    ws, limit = await _fs(sandbox_id, s, caller)
    if body.encoding == "base64":
        import base64
        import binascii

        try:
            content = base64.b64decode(body.content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("content is not valid base64") from exc
    elif body.encoding in ("utf-8", "utf8"):
        content = body.content.encode()
    else:
        raise InvalidInput("encoding must be utf-8 or base64", details={"encoding": body.encoding})
    await _blocking(files.write_bytes, ws, body.path, content, limit, s.max_file_bytes)
    return {"status": "ok", "path": body.path, "size": len(content)}


@router.get("/sandboxes/{sandbox_id}/filesystem/directories", tags=["files"], response_model=DirectoryListing)
async def list_directory(
    sandbox_id: str, path: str = ".", s: SandboxService = Depends(svc), caller: Principal = Reader
) -> dict[str, Any]:
    ws, _ = await _fs(sandbox_id, s, caller)
    entries: list[FileInfo] = await _blocking(files.list_dir, ws, path)
    return {"path": path, "entries": [e.model_dump(mode="json") for e in entries]}


@router.delete("/sandboxes/{sandbox_id}/filesystem/files", tags=["files"], response_model=StatusReply)
async def delete_file(
    sandbox_id: str, path: str, s: SandboxService = Depends(svc), caller: Principal = Writer
) -> dict[str, str]:
    """Delete a file or directory; 200 ``{"status": "ok"}`` as Bay."""
    ws, _ = await _fs(sandbox_id, s, caller)
    await _blocking(files.delete, ws, path)
    return {"status": "ok"}


@router.post("/sandboxes/{sandbox_id}/filesystem/upload", tags=["files"], response_model=FileWritten)
async def upload_file(
    sandbox_id: str,
    file: UploadFile = File(...),
    path: str = Form(..., min_length=1),
    s: SandboxService = Depends(svc),
    caller: Principal = Writer,
) -> dict[str, Any]:
    """Multipart upload (field ``file`` and form field ``path``); binary-safe."""
    ws, limit = await _fs(sandbox_id, s, caller)
    size = file.size if file.size is not None else 0
    if size > s.max_file_bytes:
        raise PayloadTooLarge(f"file of {size} bytes exceeds the {s.max_file_bytes}-byte limit", details={"size": size})
    content = await file.read(s.max_file_bytes + 1)
    await _blocking(files.write_bytes, ws, path, content, limit, s.max_file_bytes)
    return {"status": "ok", "path": path, "size": len(content)}


@router.get("/sandboxes/{sandbox_id}/filesystem/download", tags=["files"])
async def download_file(
    sandbox_id: str, path: str, s: SandboxService = Depends(svc), caller: Principal = Reader
) -> StreamingResponse:
    """The file's bytes, streamed."""
    ws, _ = await _fs(sandbox_id, s, caller)
    try:
        size, chunks = await files.stream_file(ws, path)
    except Exception as exc:  # OS errors on user paths become clean 4xx
        raise files.ensure_error_free(exc) from exc
    name = path.rsplit("/", 1)[-1] or "download"
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={"Content-Length": str(size), "Content-Disposition": f'attachment; filename="{name}"'},
    )


# ---------------------------------------------------------------- history


@router.get("/sandboxes/{sandbox_id}/history", response_model=ExecutionList, tags=["history"])
async def list_history(
    sandbox_id: str,
    q: HistoryQuery = Depends(),
    s: SandboxService = Depends(svc),
    caller: Principal = Reader,
) -> ExecutionList:
    await s.get(caller, sandbox_id)
    return await s.history.query(sandbox_id, q)


@router.get("/sandboxes/{sandbox_id}/history/last", response_model=ExecutionEntry, tags=["history"])
async def get_last(
    sandbox_id: str, exec_type: str | None = None, s: SandboxService = Depends(svc), caller: Principal = Reader
) -> ExecutionEntry:
    await s.get(caller, sandbox_id)
    return ExecutionEntry.of(await s.history.last(sandbox_id, exec_type))


@router.get("/sandboxes/{sandbox_id}/history/{execution_id}", response_model=ExecutionEntry, tags=["history"])
async def get_entry(
    sandbox_id: str, execution_id: str, s: SandboxService = Depends(svc), caller: Principal = Reader
) -> ExecutionEntry:
    await s.get(caller, sandbox_id)
    return ExecutionEntry.of(await s.history.get(sandbox_id, execution_id))


@router.patch("/sandboxes/{sandbox_id}/history/{execution_id}", response_model=ExecutionEntry, tags=["history"])
async def annotate(
    sandbox_id: str, execution_id: str, body: Annotate, s: SandboxService = Depends(svc), caller: Principal = Writer
) -> ExecutionEntry:
    await s.get(caller, sandbox_id)
    row = await s.history.annotate(
        sandbox_id, execution_id, description=body.description, tags=body.tags, notes=body.notes
    )
    return ExecutionEntry.of(row)


# ---------------------------------------------------------------- cargo


@router.post("/cargos", status_code=201, response_model=CargoInfo, tags=["cargos"])
async def create_cargo(
    body: CreateCargo | None = None, s: SandboxService = Depends(svc), caller: Principal = Writer
) -> CargoInfo:
    return await s.create_cargo(caller, size_limit_mb=(body or CreateCargo()).size_limit_mb)


@router.get("/cargos", response_model=CargoList, tags=["cargos"])
async def list_cargos(
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
    managed: bool | None = None,
    s: SandboxService = Depends(svc),
    caller: Principal = Reader,
) -> CargoList:
    return await s.list_cargos(caller, limit=limit, cursor=cursor, managed=managed)


@router.get("/cargos/{cargo_id}", response_model=CargoInfo, tags=["cargos"])
async def get_cargo(cargo_id: str, s: SandboxService = Depends(svc), caller: Principal = Reader) -> CargoInfo:
    return await s.get_cargo(caller, cargo_id)


@router.delete("/cargos/{cargo_id}", tags=["cargos"], status_code=204, response_class=Response)
async def delete_cargo(cargo_id: str, s: SandboxService = Depends(svc), caller: Principal = Writer) -> Response:
    await s.delete_cargo(caller, cargo_id)
    return Response(status_code=204)


# ---------------------------------------------------------------- wiring


def install(app: FastAPI, ctx: AppContext) -> None:
    """Build the sandbox service (driver, warm pool, runtimes) and mount the routes."""
    settings = ctx.settings
    driver: SandboxDriver
    try:
        driver = create_driver(settings.sandbox_driver, bwrap=settings.sandbox_bwrap)
    except Unavailable as exc:
        driver = UnavailableDriver(settings.sandbox_driver, exc.message)
        warning = f"sandboxes are unavailable: {driver.reason}. Fix: {driver.fix}"
        ctx.warnings.append(warning)
        log.error(warning)
    if not driver.isolated:
        warning = (
            f"sandbox driver '{driver.name}' gives NO isolation: code runs as the server's user "
            "with full access to this machine. Never use it with untrusted code."
        )
        ctx.warnings.append(warning)
        log.warning(warning)
    volumes = open_volumes(settings.data_dir.resolve() / "volumes", enabled=settings.sandbox_disk_limits)
    if not volumes.enforced:
        warning = (
            f"sandbox disk limits are NOT enforced at the filesystem level ({volumes.reason}): a sandbox can "
            "fill the host disk; only the files API checks cargo sizes."
        )
        ctx.warnings.append(warning)
        log.warning(warning)
    pool: WarmPool | None = None
    profiles = ProfileRegistry()
    if settings.sandbox_warm_pool > 0 and not isinstance(driver, UnavailableDriver):
        pool = WarmPool(driver, settings.data_dir.resolve() / "pool", size=settings.sandbox_warm_pool, volumes=volumes)
    runtimes = RuntimeManager(driver, pool, volumes)
    service = SandboxService(ctx.db, settings, runtimes, profiles)
    if pool is not None:
        pool.add_profile(service.fresh_resources(profiles.get("python-default")))
    ctx.services["sandboxes"] = service
    ctx.readiness["sandbox_driver"] = {
        **(
            driver.details()
            if isinstance(driver, UnavailableDriver)
            else {"name": driver.name, "isolated": driver.isolated, "available": True}
        ),
        "disk_limits": volumes.describe(),
    }
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def _start() -> None:
        await service.recover()
        if pool is not None:
            await pool.start()
        tasks.append(asyncio.create_task(service.run_reaper(stop)))

    async def _stop() -> None:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runtimes.close()

    ctx.on_start.append(_start)
    ctx.on_stop.append(_stop)
    app.include_router(router)
