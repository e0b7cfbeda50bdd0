"""Sandbox lifecycle, execution and cargo: the rules behind the Bay API."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from portside.server.auth import Principal
from portside.server.clock import utcnow
from portside.server.errors import Conflict, DomainError, InvalidInput, NotFound, UpstreamTimeout
from portside.server.ids import new_id
from portside.server.sandboxes import files
from portside.server.sandboxes.drivers.base import Resources, SandboxHandle
from portside.server.sandboxes.drivers.paths import workspace_relative
from portside.server.sandboxes.drivers.unavailable import DriverUnavailable
from portside.server.sandboxes.history import HistoryService
from portside.server.sandboxes.models import CargoRow, SandboxRow
from portside.server.sandboxes.observe import observe_create, observe_exec
from portside.server.sandboxes.profiles import (
    CAPABILITY_FILESYSTEM,
    CAPABILITY_PYTHON,
    CAPABILITY_SHELL,
    Profile,
    ProfileRegistry,
)
from portside.server.sandboxes.runtime import RuntimeManager
from portside.server.sandboxes.schemas import (
    CargoInfo,
    CargoList,
    ContainerInfo,
    PythonExecResult,
    SandboxInfo,
    SandboxList,
    ShellExecResult,
)
from portside.server.settings import Settings
from portside.server.store import Database

log = logging.getLogger("portside.sandboxes")

IDLE, STARTING, READY, FAILED, EXPIRED = "idle", "starting", "ready", "failed", "expired"
STATUSES = frozenset({IDLE, STARTING, READY, FAILED, EXPIRED})
MAX_TTL = 30 * 24 * 3600
MAX_TIMEOUT = 3600
#: How long a sandbox record read from the store is reused. Changes made by this process update the
#: cache at once; the window only bounds how late another replica's changes are seen.
ROW_CACHE_SECONDS = 1.0
_ROW_CACHE_MAX = 10_000


class SandboxExpired(Conflict):
    code = "sandbox_expired"


class SandboxTTLInfinite(Conflict):
    code = "sandbox_ttl_infinite"


class RuntimeFailure(DomainError):
    """The sandbox runtime could not start or crashed (502, Bay's ``ship_error``)."""

    code = "ship_error"
    status = 502


def _visible(caller: Principal, owner: str) -> bool:
    return caller.has("admin") or caller.owner == owner


class SandboxService:
    """Creates sandboxes, runs code in them, manages their files and cargo volumes."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        runtimes: RuntimeManager,
        profiles: ProfileRegistry | None = None,
        history: HistoryService | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.runtimes = runtimes
        self.profiles = profiles or ProfileRegistry()
        self.history = history or HistoryService(db)
        self.cargo_root = settings.data_dir.resolve() / "cargos"
        self.volumes = runtimes.volumes
        self.node_id = f"{settings.instance_name}-{os.getpid()}"
        self.driver_name = runtimes.driver.name
        self._rows: dict[str, tuple[float, SandboxRow]] = {}
        # Generations and read counts exist only while a read of that sandbox is in flight.
        self._row_gen: dict[str, int] = {}
        self._reads: dict[str, int] = {}

    # ------------------------------------------------------------------ helpers

    def workspace(self, cargo_id: str) -> Path:
        """The host directory of a cargo (its volume's mount point)."""
        return self.cargo_root / cargo_id

    async def workspace_ready(self, cargo_id: str) -> Path:
        """The host directory of a cargo, its volume mounted (again, after a restart) if needed."""
        ws = self.workspace(cargo_id)
        if not self.volumes.is_mounted(ws):
            await asyncio.to_thread(self.volumes.mount, ws)
        return ws

    async def _destroy_workspace(self, cargo_id: str) -> None:
        """Remove a cargo's volume and files (works whatever state its sandbox's processes are in)."""
        try:
            await asyncio.to_thread(self.volumes.destroy, self.workspace(cargo_id))
        except OSError:
            log.exception("could not remove the workspace of cargo %s", cargo_id)

    def fresh_resources(self, profile: Profile) -> Resources:
        """The profile's resources with the size of a sandbox's own workspace filled in."""
        disk_mb = profile.resources.disk_mb or self.settings.sandbox_default_cargo_mb
        return profile.resources.model_copy(update={"disk_mb": disk_mb})

    async def _row(self, caller: Principal, sandbox_id: str) -> SandboxRow:
        """The caller's sandbox record (cached briefly: executions read it on every call)."""
        hit = self._rows.get(sandbox_id)
        if hit is not None and hit[0] > time.monotonic():
            row: SandboxRow | None = hit[1]
        else:
            gen = self._row_gen.get(sandbox_id, 0)
            self._reads[sandbox_id] = self._reads.get(sandbox_id, 0) + 1
            try:
                async with self.db.session() as s:
                    row = await s.get(SandboxRow, sandbox_id)
                if row is not None and row.deleted_at is None and self._row_gen.get(sandbox_id, 0) == gen:
                    self._remember(row)
            finally:
                self._read_done(sandbox_id)
        if row is None or row.deleted_at is not None or not _visible(caller, row.owner):
            raise NotFound(f"sandbox {sandbox_id} not found", details={"sandbox_id": sandbox_id})
        return row

    async def _cargo(self, caller: Principal, cargo_id: str) -> CargoRow:
        async with self.db.session() as s:
            row = await s.get(CargoRow, cargo_id)
        if row is None or row.deleted_at is not None or not _visible(caller, row.owner):
            raise NotFound(f"cargo {cargo_id} not found", details={"cargo_id": cargo_id})
        return row

    def _info(self, row: SandboxRow) -> SandboxInfo:
        profile = self.profiles.get(row.profile)
        containers = None
        if row.status == READY and self.runtimes.get(row.id) is not None:
            containers = [
                ContainerInfo(
                    name="ship",
                    runtime_type="ship",
                    status="running",
                    version=f"portside-{self.driver_name}",
                    capabilities=list(profile.capabilities),
                    healthy=True,
                )
            ]
        return SandboxInfo.of(row, list(profile.capabilities), containers)

    def _remember(self, row: SandboxRow) -> None:
        if len(self._rows) >= _ROW_CACHE_MAX:
            self._rows.clear()
        self._rows[row.id] = (time.monotonic() + ROW_CACHE_SECONDS, row)

    def _forget(self, sandbox_id: str) -> None:
        """Drop the cached record; a read that started before this will not re-cache it."""
        self._rows.pop(sandbox_id, None)
        if sandbox_id in self._reads:
            self._row_gen[sandbox_id] = self._row_gen.get(sandbox_id, 0) + 1

    def _prune_rows(self) -> None:
        """Drop cached records past their reuse window (the cache holds only recently used sandboxes)."""
        now = time.monotonic()
        for sandbox_id in [k for k, (until, _) in self._rows.items() if until <= now]:
            self._rows.pop(sandbox_id, None)

    def _read_done(self, sandbox_id: str) -> None:
        left = self._reads.get(sandbox_id, 1) - 1
        if left > 0:
            self._reads[sandbox_id] = left
        else:
            self._reads.pop(sandbox_id, None)
            self._row_gen.pop(sandbox_id, None)

    def tracked(self) -> dict[str, int]:
        """How many sandboxes have per-sandbox state here (tests and leak checks)."""
        return {
            "cached_rows": len(self._rows),
            "row_generations": len(self._row_gen),
            **self.runtimes.tracked(),
        }

    async def _set(self, sandbox_id: str, **values: object) -> SandboxRow:
        self._forget(sandbox_id)
        async with self.db.transaction() as s:
            row = await s.get(SandboxRow, sandbox_id)
            if row is None:
                raise NotFound(f"sandbox {sandbox_id} not found")
            for key, value in values.items():
                setattr(row, key, value)
        self._forget(sandbox_id)
        if row.deleted_at is None:
            self._remember(row)
        return row

    @staticmethod
    def _expired(row: SandboxRow, now: datetime) -> bool:
        return row.status == EXPIRED or (row.expires_at is not None and row.expires_at <= now)

    # ------------------------------------------------------------------ lifecycle

    async def create(
        self, caller: Principal, *, profile: str = "python-default", ttl: int | None = None, cargo_id: str | None = None
    ) -> SandboxInfo:
        """Create a sandbox with a running runtime (from the warm pool when possible).

        The runtime starts first and the records are written once, already ``ready``: one write on
        the hot path, and a start that fails leaves nothing behind (the caller gets ``ship_error``).
        """
        prof = self.profiles.get(profile)
        with observe_create(self.driver_name, prof.id):
            return await self._create(caller, prof, ttl, cargo_id)

    async def _create(self, caller: Principal, prof: Profile, ttl: int | None, cargo_id: str | None) -> SandboxInfo:
        if ttl is not None and not 0 <= ttl <= MAX_TTL:
            raise InvalidInput(f"ttl must be between 0 and {MAX_TTL} seconds", details={"ttl": ttl})
        sandbox_id = new_id("sbx")
        fresh = cargo_id is None
        resources = self.fresh_resources(prof) if fresh else prof.resources
        if cargo_id is not None:
            cargo = await self._cargo(caller, cargo_id)
            if cargo.managed:
                raise Conflict(
                    f"cargo {cargo_id} is managed by sandbox {cargo.managed_by_sandbox_id}",
                    details={"cargo_id": cargo_id, "managed_by_sandbox_id": cargo.managed_by_sandbox_id},
                )
        else:
            cargo = CargoRow(
                id=new_id("cargo"),
                owner=caller.owner,
                managed=True,
                managed_by_sandbox_id=sandbox_id,
                backend="local",
                size_limit_mb=resources.disk_mb or self.settings.sandbox_default_cargo_mb,
                last_accessed_at=utcnow(),
            )
        async with self.runtimes.lock(sandbox_id):
            try:
                await self.runtimes.start(sandbox_id, self.workspace(cargo.id), resources, fresh_workspace=fresh)
            except Exception as exc:
                if fresh:
                    await self._destroy_workspace(cargo.id)
                if isinstance(exc, DriverUnavailable):
                    raise
                log.exception("sandbox %s failed to start", sandbox_id)
                raise RuntimeFailure(f"sandbox failed to start: {exc}", details={"profile": prof.id}) from exc
            now = utcnow()
            row = SandboxRow(
                id=sandbox_id,
                owner=caller.owner,
                profile=prof.id,
                status=READY,
                cargo_id=cargo.id,
                ttl_seconds=ttl or None,
                expires_at=now + timedelta(seconds=ttl) if ttl else None,
                idle_expires_at=now + timedelta(seconds=prof.idle_timeout),
                last_active_at=now,
                session_id=new_id("sess"),
                node_id=self.node_id,
                created_at=now,
            )
            try:
                async with self.db.transaction() as s:
                    if fresh:
                        s.add(cargo)
                        await s.flush()
                    else:
                        attached = await s.get(CargoRow, cargo.id)
                        if attached is None or attached.deleted_at is not None:
                            raise NotFound(f"cargo {cargo.id} not found", details={"cargo_id": cargo.id})
                        attached.last_accessed_at = now
                    s.add(row)
            except BaseException:
                await self.runtimes.stop(sandbox_id)
                if fresh:
                    await self._destroy_workspace(cargo.id)
                raise
        self._remember(row)
        return self._info(row)

    async def _start_runtime(self, row: SandboxRow, profile: Profile, *, fresh_workspace: bool) -> SandboxHandle:
        """Start (or find) the runtime and mark the sandbox ready."""
        async with self.runtimes.lock(row.id):
            handle = self.runtimes.get(row.id)
            if handle is not None:
                return handle
            try:
                handle = await self.runtimes.start(
                    row.id, self.workspace(row.cargo_id), profile.resources, fresh_workspace=fresh_workspace
                )
            except DriverUnavailable:
                raise
            except Exception as exc:
                log.exception("sandbox %s failed to start", row.id)
                await self._set(row.id, status=FAILED, last_error=str(exc)[:2000])
                raise RuntimeFailure(f"sandbox {row.id} failed to start: {exc}") from exc
            now = utcnow()
            await self._set(
                row.id,
                status=READY,
                session_id=new_id("sess"),
                node_id=self.node_id,
                last_active_at=now,
                idle_expires_at=now + timedelta(seconds=profile.idle_timeout),
                last_error=None,
            )
            return handle

    async def get(self, caller: Principal, sandbox_id: str) -> SandboxInfo:
        row = await self._settle_expiry(await self._row(caller, sandbox_id))
        if row.status == READY and self.runtimes.get(row.id) is None and row.node_id == self.node_id:
            row = await self._set(row.id, status=IDLE, idle_expires_at=None)
        return self._info(row)

    async def _settle_expiry(self, row: SandboxRow) -> SandboxRow:
        """Expire the sandbox now if its TTL has passed and the reaper has not got to it yet."""
        if row.status != EXPIRED and self._expired(row, utcnow()):
            await self._expire(row.id)
            async with self.db.session() as s:
                fresh = await s.get(SandboxRow, row.id)
            return fresh or row
        return row

    async def list(
        self, caller: Principal, *, limit: int = 50, cursor: str | None = None, status: str | None = None
    ) -> SandboxList:
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {sorted(STATUSES)}", details={"status": status})
        if not 1 <= limit <= 200:
            raise InvalidInput("limit must be between 1 and 200", details={"limit": limit})
        stmt = select(SandboxRow).where(SandboxRow.deleted_at.is_(None))
        if not caller.has("admin"):
            stmt = stmt.where(SandboxRow.owner == caller.owner)
        if status:
            stmt = stmt.where(SandboxRow.status == status)
        if cursor:
            stmt = stmt.where(SandboxRow.id < cursor)
        async with self.db.session() as s:
            rows = list((await s.execute(stmt.order_by(SandboxRow.id.desc()).limit(limit + 1))).scalars())
        more = len(rows) > limit
        rows = rows[:limit]
        return SandboxList(items=[self._info(r) for r in rows], next_cursor=rows[-1].id if more and rows else None)

    async def stop(self, caller: Principal, sandbox_id: str) -> None:
        """Stop the runtime; files stay, Python state is lost, the next use starts it again."""
        row = await self._row(caller, sandbox_id)
        async with self.runtimes.lock(row.id):
            await self.runtimes.stop(row.id)
        if row.status != EXPIRED:
            await self._set(row.id, status=IDLE, idle_expires_at=None, session_id=None)

    async def delete(self, caller: Principal, sandbox_id: str) -> None:
        """Delete the sandbox and its managed cargo; an external cargo stays."""
        row = await self._row(caller, sandbox_id)
        async with self.runtimes.lock(row.id):
            await self.runtimes.stop(row.id)
        now = utcnow()
        managed: str | None = None
        async with self.db.transaction() as s:
            srow = await s.get(SandboxRow, row.id)
            cargo = await s.get(CargoRow, row.cargo_id)
            if srow is not None:
                srow.deleted_at = now
                srow.status = IDLE
            if cargo is not None and cargo.managed and cargo.deleted_at is None:
                cargo.deleted_at = now
                managed = cargo.id
        self._forget(row.id)
        if managed is not None:
            await self._destroy_workspace(managed)

    async def extend_ttl(self, caller: Principal, sandbox_id: str, seconds: int) -> SandboxInfo:
        if not 1 <= seconds <= MAX_TTL:
            raise InvalidInput(f"extend_by must be between 1 and {MAX_TTL}", details={"extend_by": seconds})
        row = await self._row(caller, sandbox_id)
        now = utcnow()
        if self._expired(row, now):
            raise SandboxExpired(f"sandbox {sandbox_id} has expired", details={"expires_at": str(row.expires_at)})
        if row.expires_at is None:
            raise SandboxTTLInfinite(f"sandbox {sandbox_id} has no TTL to extend")
        new_expiry = row.expires_at + timedelta(seconds=seconds)
        ttl = (row.ttl_seconds or 0) + seconds
        return self._info(await self._set(row.id, expires_at=new_expiry, ttl_seconds=ttl))

    async def keepalive(self, caller: Principal, sandbox_id: str) -> SandboxInfo:
        """Push the idle deadline; never starts a runtime."""
        row = await self._row(caller, sandbox_id)
        if self._expired(row, utcnow()):
            raise SandboxExpired(f"sandbox {sandbox_id} has expired")
        if self.runtimes.get(row.id) is not None:
            idle = self.profiles.get(row.profile).idle_timeout
            now = utcnow()
            row = await self._set(row.id, last_active_at=now, idle_expires_at=now + timedelta(seconds=idle))
        return self._info(row)

    # ------------------------------------------------------------------ execution

    async def _usable(self, caller: Principal, sandbox_id: str, capability: str) -> tuple[SandboxRow, SandboxHandle]:
        row = await self._row(caller, sandbox_id)
        profile = self.profiles.get(row.profile)
        profile.require(capability)
        now = utcnow()
        if self._expired(row, now):
            if row.status != EXPIRED:
                await self._expire(row.id)
            raise SandboxExpired(f"sandbox {sandbox_id} has expired")
        handle = self.runtimes.get(row.id)
        if handle is None:
            handle = await self._start_runtime(row, profile, fresh_workspace=False)
            row = await self._row(caller, sandbox_id)
        elif row.idle_expires_at is None or (row.idle_expires_at - now).total_seconds() < profile.idle_timeout / 2:
            # Touch the idle deadline at most every half period, keeping the hot path free of writes.
            row = await self._set(
                row.id, last_active_at=now, idle_expires_at=now + timedelta(seconds=profile.idle_timeout)
            )
        return row, handle

    @staticmethod
    def _timeout(timeout: float) -> float:
        if not 0 < timeout <= MAX_TIMEOUT:
            raise InvalidInput(f"timeout must be between 1 and {MAX_TIMEOUT} seconds", details={"timeout": timeout})
        return float(timeout)

    async def exec_python(
        self,
        caller: Principal,
        sandbox_id: str,
        code: str,
        *,
        timeout: float = 30,
        include_code: bool = False,
        description: str | None = None,
        tags: str | None = None,
    ) -> PythonExecResult:
        """Run code in the sandbox's kernel and record it in the history."""
        limit = self._timeout(timeout)
        row, handle = await self._usable(caller, sandbox_id, CAPABILITY_PYTHON)
        with observe_exec(self.driver_name, row.profile, "python", row.id) as outcome:
            result = await handle.exec_python(code, timeout=limit)
            outcome.of(result.success, result.timed_out)
        error = result.error
        if result.timed_out:
            error = f"execution timed out after {limit:g}s and was interrupted" + (f"\n{error}" if error else "")
        data: dict[str, object] = {
            "execution_count": result.execution_count,
            "output": {"text": result.result or "", "images": result.images},
        }
        data.update(result.data)
        entry = await self.history.record(
            sandbox_id=row.id,
            owner=row.owner,
            session_id=row.session_id,
            exec_type="python",
            code=code,
            success=result.success and not result.timed_out,
            execution_time_ms=result.execution_time_ms,
            output=result.output,
            error=error,
            data=data,
            description=description,
            tags=tags,
        )
        if result.timed_out:
            raise UpstreamTimeout(
                f"python execution timed out after {limit:g}s (the kernel was interrupted; state is kept)",
                details={"execution_id": entry.id, "timeout": limit},
            )
        return PythonExecResult(
            success=entry.success,
            output=result.output,
            error=error,
            data=data,
            execution_id=entry.id,
            execution_time_ms=result.execution_time_ms,
            code=code if include_code else None,
        )

    async def exec_shell(
        self,
        caller: Principal,
        sandbox_id: str,
        command: str,
        *,
        cwd: str | None = None,
        timeout: float = 30,
        include_code: bool = False,
        description: str | None = None,
        tags: str | None = None,
    ) -> ShellExecResult:
        """Run a shell command in the sandbox and record it in the history."""
        limit = self._timeout(timeout)
        if cwd is not None:
            workspace_relative(cwd)  # lexical check: invalid_path before anything runs
        row, handle = await self._usable(caller, sandbox_id, CAPABILITY_SHELL)
        with observe_exec(self.driver_name, row.profile, "shell", row.id) as outcome:
            result = await handle.exec_shell(command, cwd=cwd, timeout=limit)
            outcome.of(result.success, result.timed_out)
        error = result.stderr or None
        if result.timed_out:
            error = f"command timed out after {limit:g}s and was killed" + (f"\n{error}" if error else "")
        entry = await self.history.record(
            sandbox_id=row.id,
            owner=row.owner,
            session_id=row.session_id,
            exec_type="shell",
            code=command,
            success=result.success and not result.timed_out,
            exit_code=result.exit_code,
            execution_time_ms=result.execution_time_ms,
            output=result.stdout,
            error=error,
            description=description,
            tags=tags,
        )
        if result.timed_out:
            raise UpstreamTimeout(
                f"shell command timed out after {limit:g}s and was killed",
                details={"execution_id": entry.id, "timeout": limit},
            )
        return ShellExecResult(
            success=entry.success,
            output=result.stdout,
            error=error,
            exit_code=result.exit_code,
            execution_id=entry.id,
            execution_time_ms=result.execution_time_ms,
            command=command if include_code else None,
        )

    # ------------------------------------------------------------------ files

    async def files_of(self, caller: Principal, sandbox_id: str) -> tuple[Path, int]:
        """(host workspace, cargo byte limit) of a sandbox whose files the caller may touch."""
        row = await self._row(caller, sandbox_id)
        self.profiles.get(row.profile).require(CAPABILITY_FILESYSTEM)
        if self._expired(row, utcnow()):
            await self._settle_expiry(row)
            raise SandboxExpired(f"sandbox {sandbox_id} has expired")
        async with self.db.session() as s:
            cargo = await s.get(CargoRow, row.cargo_id)
        limit_mb = cargo.size_limit_mb if cargo else self.settings.sandbox_default_cargo_mb
        return await self.workspace_ready(row.cargo_id), limit_mb * 1024 * 1024

    @property
    def max_file_bytes(self) -> int:
        return self.settings.sandbox_max_file_mb * 1024 * 1024

    # ------------------------------------------------------------------ cargo

    async def create_cargo(self, caller: Principal, *, size_limit_mb: int | None = None) -> CargoInfo:
        size = size_limit_mb or self.settings.sandbox_default_cargo_mb
        if not 1 <= size <= 65536:
            raise InvalidInput("size_limit_mb must be between 1 and 65536", details={"size_limit_mb": size})
        now = utcnow()
        row = CargoRow(
            id=new_id("cargo"),
            owner=caller.owner,
            managed=False,
            backend="local",
            size_limit_mb=size,
            last_accessed_at=now,
        )
        await asyncio.to_thread(self.volumes.create, self.workspace(row.id), size)
        try:
            async with self.db.transaction() as s:
                s.add(row)
        except BaseException:
            await self._destroy_workspace(row.id)
            raise
        return CargoInfo.of(row, 0)

    async def get_cargo(self, caller: Principal, cargo_id: str) -> CargoInfo:
        row = await self._cargo(caller, cargo_id)
        used = await asyncio.to_thread(files.usage_bytes, await self.workspace_ready(row.id))
        return CargoInfo.of(row, used)

    async def list_cargos(
        self, caller: Principal, *, limit: int = 50, cursor: str | None = None, managed: bool | None = None
    ) -> CargoList:
        if not 1 <= limit <= 200:
            raise InvalidInput("limit must be between 1 and 200", details={"limit": limit})
        stmt = select(CargoRow).where(CargoRow.deleted_at.is_(None), CargoRow.managed.is_(bool(managed)))
        if not caller.has("admin"):
            stmt = stmt.where(CargoRow.owner == caller.owner)
        if cursor:
            stmt = stmt.where(CargoRow.id < cursor)
        async with self.db.session() as s:
            rows = list((await s.execute(stmt.order_by(CargoRow.id.desc()).limit(limit + 1))).scalars())
        more = len(rows) > limit
        rows = rows[:limit]
        return CargoList(items=[CargoInfo.of(r) for r in rows], next_cursor=rows[-1].id if more and rows else None)

    async def delete_cargo(self, caller: Principal, cargo_id: str) -> None:
        row = await self._cargo(caller, cargo_id)
        async with self.db.transaction() as s:
            users = (
                (
                    await s.execute(
                        select(SandboxRow.id).where(SandboxRow.cargo_id == cargo_id, SandboxRow.deleted_at.is_(None))
                    )
                )
                .scalars()
                .all()
            )
            if users:
                raise Conflict(
                    f"cargo {cargo_id} is in use by sandbox(es) {', '.join(users)}",
                    details={"active_sandbox_ids": list(users)},
                )
            cargo = await s.get(CargoRow, row.id)
            if cargo is not None:
                cargo.deleted_at = utcnow()
        await self._destroy_workspace(cargo_id)

    # ------------------------------------------------------------------ background

    async def _expire(self, sandbox_id: str) -> None:
        """Stop the runtime and remove the sandbox's own cargo: nothing can use an expired sandbox's files."""
        async with self.runtimes.lock(sandbox_id):
            await self.runtimes.stop(sandbox_id)
        row = await self._set(sandbox_id, status=EXPIRED, idle_expires_at=None, session_id=None)
        managed: str | None = None
        async with self.db.transaction() as s:
            cargo = await s.get(CargoRow, row.cargo_id)
            if cargo is not None and cargo.managed and cargo.deleted_at is None:
                cargo.deleted_at = utcnow()
                managed = cargo.id
        if managed is not None:
            await self._destroy_workspace(managed)

    async def reap(self) -> int:
        """Expire sandboxes past their TTL and stop runtimes idle past their deadline."""
        self._prune_rows()
        now = utcnow()
        async with self.db.session() as s:
            due = (
                (
                    await s.execute(
                        select(SandboxRow).where(
                            SandboxRow.deleted_at.is_(None),
                            SandboxRow.status != EXPIRED,
                            SandboxRow.expires_at.is_not(None),
                            SandboxRow.expires_at <= now,
                        )
                    )
                )
                .scalars()
                .all()
            )
        for row in due:
            await self._expire(row.id)
        stopped = 0
        for sandbox_id in self.runtimes.running():
            async with self.db.session() as s:
                live = await s.get(SandboxRow, sandbox_id)
            if live is not None and live.idle_expires_at is not None and live.idle_expires_at <= now:
                async with self.runtimes.lock(sandbox_id):
                    await self.runtimes.stop(sandbox_id)
                await self._set(sandbox_id, status=IDLE, idle_expires_at=None, session_id=None)
                stopped += 1
        return len(due) + stopped

    async def recover(self) -> None:
        """After a restart no runtime survives: sandboxes this node ran become idle (files intact)."""
        adopted = await asyncio.to_thread(self.volumes.adopt_mounts, self.cargo_root)
        if adopted:
            log.info("reusing %d cargo volume(s) still mounted by a previous server process", adopted)
        async with self.db.transaction() as s:
            rows = (
                (
                    await s.execute(
                        select(SandboxRow).where(
                            SandboxRow.deleted_at.is_(None), SandboxRow.status.in_([READY, STARTING])
                        )
                    )
                )
                .scalars()
                .all()
            )
            for row in rows:
                if row.node_id is None or row.node_id.startswith(self.settings.instance_name):
                    row.status = IDLE
                    row.session_id = None
                    row.idle_expires_at = None

    async def run_reaper(self, stop: asyncio.Event) -> None:
        """Loop until ``stop`` is set, sweeping every ``sandbox_reaper_interval`` seconds."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.reap()
            except Exception:  # keep sweeping
                log.exception("sandbox reaper failed")
            delay = max(0.1, self.settings.sandbox_reaper_interval - (time.monotonic() - started))
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass
