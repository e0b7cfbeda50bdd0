"""Sandbox, cargo, file and execution-history models (the Bay API shapes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portside.types.common import Model, Page


class SandboxContainer(Model):
    """A runtime inside a sandbox (Portside runs one, named ``ship``)."""

    name: str
    runtime_type: str
    status: str
    version: str | None = None
    capabilities: list[str] = []
    healthy: bool | None = None


class SandboxInfo(Model):
    """A sandbox record. ``status``: idle, starting, ready, failed or expired."""

    id: str
    status: str
    profile: str
    cargo_id: str
    capabilities: list[str]
    created_at: datetime
    expires_at: datetime | None = None
    idle_expires_at: datetime | None = None
    ttl: int | None = None
    containers: list[SandboxContainer] | None = None


SandboxPage = Page[SandboxInfo]


class Profile(Model):
    """A sandbox preset: resources, capabilities and idle timeout."""

    id: str
    image: str
    resources: dict[str, Any]
    capabilities: list[str]
    idle_timeout: int
    description: str | None = None
    containers: list[dict[str, Any]] | None = None


class ProfileList(Model):
    """``GET /v1/profiles``."""

    items: list[Profile]


class CargoInfo(Model):
    """A persistent volume mounted at ``/workspace``; ``managed`` ones belong to one sandbox."""

    id: str
    managed: bool
    managed_by_sandbox_id: str | None = None
    backend: str
    size_limit_mb: int
    created_at: datetime
    last_accessed_at: datetime
    size_bytes: int | None = None


CargoPage = Page[CargoInfo]


class FileInfo(Model):
    """A directory entry; ``path`` is relative to the workspace, ``size`` is None for directories."""

    name: str
    path: str
    is_dir: bool
    size: int | None = None
    modified_at: datetime | None = None


class DirectoryListing(Model):
    """``GET .../filesystem/directories``: the entries of ``path``."""

    path: str
    entries: list[FileInfo]


class FileContent(Model):
    """``GET .../filesystem/files``: a text file's content (UTF-8, undecodable bytes replaced)."""

    path: str
    content: str
    size: int


class FileWritten(Model):
    """A written or uploaded file: ``status`` is ``ok`` (as Bay answers)."""

    status: str
    path: str
    size: int


class PythonExecResult(Model):
    """Outcome of ``python.exec``: a failing program is ``success=False`` with ``error`` set."""

    success: bool
    output: str
    error: str | None = None
    data: dict[str, Any] | None = None
    execution_id: str | None = None
    execution_time_ms: int | None = None
    code: str | None = None


class ShellExecResult(Model):
    """Outcome of ``shell.exec``: ``output`` is stdout, ``error`` stderr."""

    success: bool
    output: str
    error: str | None = None
    exit_code: int | None = None
    execution_id: str | None = None
    execution_time_ms: int | None = None
    command: str | None = None


class Execution(Model):
    """One recorded execution of the history."""

    id: str
    sandbox_id: str | None = None
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

    @property
    def tag_list(self) -> list[str]:
        """``tags`` split on commas."""
        return [t for t in (self.tags or "").split(",") if t]


class ExecutionList(Model):
    """A page of the history (newest first); ``total`` counts every match."""

    entries: list[Execution]
    total: int
