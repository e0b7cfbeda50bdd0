"""Wire models of the sandbox API (the Bay API that shipyard-neo-sdk speaks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from portside.server.api.params import MAX_OFFSET
from portside.server.sandboxes.models import CargoRow, ExecutionRow, SandboxRow


class ContainerInfo(BaseModel):
    name: str
    runtime_type: str
    status: str
    version: str | None = None
    capabilities: list[str]
    healthy: bool | None = None


class SandboxInfo(BaseModel):
    id: str
    status: str
    profile: str
    cargo_id: str
    capabilities: list[str]
    created_at: datetime
    expires_at: datetime | None
    idle_expires_at: datetime | None
    ttl: int | None = None
    containers: list[ContainerInfo] | None = None

    @classmethod
    def of(cls, row: SandboxRow, capabilities: list[str], containers: list[ContainerInfo] | None) -> SandboxInfo:
        return cls(
            id=row.id,
            status=row.status,
            profile=row.profile,
            cargo_id=row.cargo_id,
            capabilities=capabilities,
            created_at=row.created_at,
            expires_at=row.expires_at,
            idle_expires_at=row.idle_expires_at,
            ttl=row.ttl_seconds,
            containers=containers,
        )


class SandboxList(BaseModel):
    items: list[SandboxInfo]
    next_cursor: str | None = None


class CargoInfo(BaseModel):
    id: str
    managed: bool
    managed_by_sandbox_id: str | None
    backend: str
    size_limit_mb: int
    created_at: datetime
    last_accessed_at: datetime
    size_bytes: int | None = None

    @classmethod
    def of(cls, row: CargoRow, size_bytes: int | None = None) -> CargoInfo:
        return cls(
            id=row.id,
            managed=row.managed,
            managed_by_sandbox_id=row.managed_by_sandbox_id,
            backend=row.backend,
            size_limit_mb=row.size_limit_mb,
            created_at=row.created_at,
            last_accessed_at=row.last_accessed_at,
            size_bytes=size_bytes,
        )


class CargoList(BaseModel):
    items: list[CargoInfo]
    next_cursor: str | None = None


class FileInfo(BaseModel):
    name: str
    path: str
    is_dir: bool
    size: int | None = None
    modified_at: datetime | None = None


class PythonExecResult(BaseModel):
    success: bool
    output: str
    error: str | None = None
    data: dict[str, Any] | None = None
    execution_id: str | None = None
    execution_time_ms: int | None = None
    code: str | None = None


class ShellExecResult(BaseModel):
    success: bool
    output: str
    error: str | None = None
    exit_code: int | None = None
    execution_id: str | None = None
    execution_time_ms: int | None = None
    command: str | None = None


class ExecutionEntry(BaseModel):
    id: str
    sandbox_id: str
    session_id: str | None = None
    exec_type: str
    code: str
    success: bool
    exit_code: int | None = None
    execution_time_ms: int
    output: str | None = None
    error: str | None = None
    payload_ref: str | None = None
    description: str | None = None
    tags: str | None = None
    notes: str | None = None
    learn_enabled: bool = False
    learn_status: str | None = None
    learn_error: str | None = None
    learn_processed_at: datetime | None = None
    created_at: datetime

    @classmethod
    def of(cls, row: ExecutionRow) -> ExecutionEntry:
        return cls(
            id=row.id,
            sandbox_id=row.sandbox_id,
            session_id=row.session_id,
            exec_type=row.exec_type,
            code=row.code,
            success=row.success,
            exit_code=row.exit_code,
            execution_time_ms=row.execution_time_ms,
            output=row.output,
            error=row.error,
            payload_ref=row.payload_ref,
            description=row.description,
            tags=row.tags,
            notes=row.notes,
            created_at=row.created_at,
        )


class ExecutionList(BaseModel):
    entries: list[ExecutionEntry]
    total: int


class HistoryQuery(BaseModel):
    """Filters of the execution history."""

    exec_type: str | None = None
    success_only: bool = False
    tags: str | None = None
    has_notes: bool = False
    has_description: bool = False
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
