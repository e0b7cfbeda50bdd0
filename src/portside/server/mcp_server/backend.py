"""What the MCP tools call: the :class:`Backend` protocol and its in-server implementation.

Inside the server the tools call the services directly (:class:`ServiceBackend`), as the caller
who authenticated the MCP request. ``portside mcp`` (stdio) uses :mod:`.remote`, which reaches the
same services through the REST API. Both return the REST wire shapes as plain JSON dicts, so a
tool answers the same way over either transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from portside.server.auth import Principal
from portside.server.errors import DomainError
from portside.server.sandboxes import files
from portside.server.sandboxes.schemas import ExecutionEntry, HistoryQuery
from portside.server.sandboxes.service import SandboxService
from portside.server.skills.service import SkillService

T = TypeVar("T")
JSON = dict[str, Any]


@dataclass(eq=False)
class BackendError(Exception):
    """A refusal from Portside (domain error or HTTP error), in one shape for the tools."""

    code: str
    message: str
    status: int = 400
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    @property
    def sandbox_gone(self) -> bool:
        """The sandbox itself no longer exists or has expired."""
        return self.code == "sandbox_expired" or (self.code == "not_found" and "sandbox_id" in self.details)


class Backend(Protocol):
    """Everything the MCP tools need from Portside, as JSON dicts in the REST wire shapes."""

    def require(self, scope: str) -> None:
        """Raise :class:`BackendError` (403) when the caller lacks ``scope``; remote backends defer to the server."""

    def error_of(self, exc: BaseException) -> BackendError | None:
        """The :class:`BackendError` an exception from this backend stands for, or None if unexpected."""

    async def create_sandbox(self, *, ttl: int | None, profile: str) -> str: ...
    async def delete_sandbox(self, sandbox_id: str) -> None: ...
    async def stop_sandbox(self, sandbox_id: str) -> None: ...
    async def exec_python(
        self, sandbox_id: str, code: str, *, timeout: int, description: str | None, tags: str | None
    ) -> JSON: ...
    async def exec_shell(
        self,
        sandbox_id: str,
        command: str,
        *,
        cwd: str | None,
        timeout: int,
        description: str | None,
        tags: str | None,
    ) -> JSON: ...
    async def read_file(self, sandbox_id: str, path: str) -> JSON: ...
    async def write_file(self, sandbox_id: str, path: str, content: str) -> JSON: ...
    async def list_files(self, sandbox_id: str, path: str) -> JSON: ...
    async def history(self, sandbox_id: str, query: JSON) -> JSON: ...
    async def get_execution(self, sandbox_id: str, execution_id: str) -> JSON: ...
    async def last_execution(self, sandbox_id: str, exec_type: str | None) -> JSON: ...
    async def annotate(
        self, sandbox_id: str, execution_id: str, *, description: str | None, tags: str | None, notes: str | None
    ) -> JSON: ...
    async def create_candidate(self, fields: JSON) -> JSON: ...
    async def evaluate_candidate(self, candidate_id: str, fields: JSON) -> JSON: ...
    async def run_evaluation(self, candidate_id: str, benchmark_id: str) -> JSON: ...
    async def promote(
        self, candidate_id: str, *, stage: str, canary_share: float | None, change_summary: str | None
    ) -> JSON: ...
    async def list_candidates(self, *, status: str | None, skill_key: str | None, limit: int, offset: int) -> JSON: ...
    async def list_releases(
        self, *, skill_key: str | None, active_only: bool, stage: str | None, limit: int, offset: int
    ) -> JSON: ...
    async def rollback(self, release_id: str) -> JSON: ...
    async def release_health(self, release_id: str) -> JSON: ...
    async def run_skill(
        self, skill_key: str, *, input: Any, sandbox_id: str | None, stage: str | None, timeout: int
    ) -> JSON: ...


def _dump(model: Any) -> JSON:
    data: JSON = model.model_dump(mode="json")
    return data


async def _blocking(fn: Callable[..., T], *args: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args)
    except DomainError:
        raise
    except Exception as exc:  # OS errors on user paths become clean domain errors
        raise files.ensure_error_free(exc) from exc


class ServiceBackend:
    """The tools' backend inside the server: the services, called as ``principal``."""

    def __init__(self, sandboxes: SandboxService, skills: SkillService, principal: Principal) -> None:
        self.sandboxes = sandboxes
        self.skills = skills
        self.principal = principal

    def require(self, scope: str) -> None:
        self.principal.require(scope)

    def error_of(self, exc: BaseException) -> BackendError | None:
        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, DomainError):
            return BackendError(exc.code, exc.message, exc.status, dict(exc.details))
        return None

    # ------------------------------------------------------------ sandboxes

    async def create_sandbox(self, *, ttl: int | None, profile: str) -> str:
        return (await self.sandboxes.create(self.principal, profile=profile, ttl=ttl)).id

    async def delete_sandbox(self, sandbox_id: str) -> None:
        await self.sandboxes.delete(self.principal, sandbox_id)

    async def stop_sandbox(self, sandbox_id: str) -> None:
        await self.sandboxes.stop(self.principal, sandbox_id)

    async def exec_python(
        self, sandbox_id: str, code: str, *, timeout: int, description: str | None, tags: str | None
    ) -> JSON:
        res = await self.sandboxes.exec_python(
            self.principal, sandbox_id, code, timeout=timeout, description=description, tags=tags
        )
        return _dump(res)

    async def exec_shell(
        self,
        sandbox_id: str,
        command: str,
        *,
        cwd: str | None,
        timeout: int,
        description: str | None,
        tags: str | None,
    ) -> JSON:
        res = await self.sandboxes.exec_shell(
            self.principal, sandbox_id, command, cwd=cwd, timeout=timeout, description=description, tags=tags
        )
        return _dump(res)

    async def read_file(self, sandbox_id: str, path: str) -> JSON:
        ws, _ = await self.sandboxes.files_of(self.principal, sandbox_id)
        data = await _blocking(files.read_bytes, ws, path, self.sandboxes.max_file_bytes)
        return {"path": path, "content": data.decode("utf-8", errors="replace"), "size": len(data)}

    async def write_file(self, sandbox_id: str, path: str, content: str) -> JSON:
        ws, limit = await self.sandboxes.files_of(self.principal, sandbox_id)
        raw = content.encode()
        await _blocking(files.write_bytes, ws, path, raw, limit, self.sandboxes.max_file_bytes)
        return {"path": path, "size": len(raw)}

    async def list_files(self, sandbox_id: str, path: str) -> JSON:
        ws, _ = await self.sandboxes.files_of(self.principal, sandbox_id)
        entries = await _blocking(files.list_dir, ws, path)
        return {"path": path, "entries": [e.model_dump(mode="json") for e in entries]}

    async def history(self, sandbox_id: str, query: JSON) -> JSON:
        await self.sandboxes.get(self.principal, sandbox_id)
        return _dump(await self.sandboxes.history.query(sandbox_id, HistoryQuery(**query)))

    async def get_execution(self, sandbox_id: str, execution_id: str) -> JSON:
        await self.sandboxes.get(self.principal, sandbox_id)
        return _dump(ExecutionEntry.of(await self.sandboxes.history.get(sandbox_id, execution_id)))

    async def last_execution(self, sandbox_id: str, exec_type: str | None) -> JSON:
        await self.sandboxes.get(self.principal, sandbox_id)
        return _dump(ExecutionEntry.of(await self.sandboxes.history.last(sandbox_id, exec_type)))

    async def annotate(
        self, sandbox_id: str, execution_id: str, *, description: str | None, tags: str | None, notes: str | None
    ) -> JSON:
        await self.sandboxes.get(self.principal, sandbox_id)
        row = await self.sandboxes.history.annotate(
            sandbox_id, execution_id, description=description, tags=tags, notes=notes
        )
        return _dump(ExecutionEntry.of(row))

    # ------------------------------------------------------------ skills

    async def create_candidate(self, fields: JSON) -> JSON:
        return _dump(await self.skills.create_candidate(self.principal, **fields))

    async def evaluate_candidate(self, candidate_id: str, fields: JSON) -> JSON:
        return _dump(await self.skills.evaluate_candidate(self.principal, candidate_id, **fields))

    async def run_evaluation(self, candidate_id: str, benchmark_id: str) -> JSON:
        return _dump(await self.skills.run_evaluation(self.principal, candidate_id, benchmark_id))

    async def promote(
        self, candidate_id: str, *, stage: str, canary_share: float | None, change_summary: str | None
    ) -> JSON:
        return _dump(
            await self.skills.promote(
                self.principal, candidate_id, stage=stage, canary_share=canary_share, change_summary=change_summary
            )
        )

    async def list_candidates(self, *, status: str | None, skill_key: str | None, limit: int, offset: int) -> JSON:
        return _dump(await self.skills.list_candidates(status=status, skill_key=skill_key, limit=limit, offset=offset))

    async def list_releases(
        self, *, skill_key: str | None, active_only: bool, stage: str | None, limit: int, offset: int
    ) -> JSON:
        res = await self.skills.list_releases(
            skill_key=skill_key, active_only=active_only, stage=stage, limit=limit, offset=offset
        )
        return _dump(res)

    async def rollback(self, release_id: str) -> JSON:
        return _dump(await self.skills.rollback(self.principal, release_id))

    async def release_health(self, release_id: str) -> JSON:
        return _dump(await self.skills.health(release_id))

    async def run_skill(
        self, skill_key: str, *, input: Any, sandbox_id: str | None, stage: str | None, timeout: int
    ) -> JSON:
        res = await self.skills.run_skill(
            self.principal, skill_key, input=input, sandbox_id=sandbox_id, stage=stage, timeout=timeout
        )
        return _dump(res)
