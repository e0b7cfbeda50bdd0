"""Agent deployments: a compiled agent running as a long-lived process in a Portside sandbox.

``deploy`` creates a sandbox (through :class:`SandboxService`), writes the agent definition and the
runtime (``runtime_script.py``) into ``.portside-agent/`` of its workspace, and starts the runtime with
``nohup python -s .portside-agent/runtime.py .portside-agent &`` over the sandbox's shell. The runtime
writes ``status.json`` every second (its pid, CPU %, RSS, uptime, task counters); a monitor loop here
renews its lease, keeps the sandbox from idling out, detects a dead runtime and saves snapshots to the
database. ``stop`` asks the runtime to exit, kills it if it does not, saves the final snapshot and log
tail, and deletes the sandbox.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from portside.server.auth import Principal
from portside.server.clock import isoformat, utcnow
from portside.server.deployments.agents import AgentRegistry, agent_document
from portside.server.deployments.tables import AgentDeploymentRow, SymbiontAgentRow
from portside.server.errors import Conflict, DomainError, InvalidInput, NotFound
from portside.server.ids import new_id
from portside.server.sandboxes.drivers import safefs
from portside.server.sandboxes.service import SandboxService

log = logging.getLogger("portside.deployments")

DEPLOYING, RUNNING, STOPPING, STOPPED, FAILED = "deploying", "running", "stopping", "stopped", "failed"
ACTIVE = frozenset({DEPLOYING, RUNNING, STOPPING})
AGENT_DIR = ".portside-agent"
RUNTIME_SOURCE = Path(__file__).with_name("runtime_script.py")
MAX_OVERRIDES_BYTES = 64 * 1024
MAX_TASK_BYTES = 1024 * 1024
LOG_TAIL_BYTES = 8192
MAX_STATUS_BYTES = 1024 * 1024


def _epoch(value: Any) -> datetime | None:
    if isinstance(value, (int, float)) and value > 0:
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    return None


@dataclass
class _Live:
    """A deployment whose runtime this server process watches."""

    deployment_id: str
    sandbox_id: str
    owner: str
    workspace: Path
    last_keepalive: float = field(default_factory=time.monotonic)
    last_persist: float = 0.0
    status: dict[str, Any] = field(default_factory=dict)

    def path(self, name: str) -> str:
        """The workspace path of ``name`` in the runtime's directory (opened via safefs, never followed)."""
        return f"{AGENT_DIR}/{name}"


def _actor(owner: str) -> Principal:
    """The identity deployments act as towards the sandbox service: the deployment's owner."""
    return Principal(
        key_id="agent-deployments", name="agent deployments", owner=owner, scopes=frozenset({"read", "write"})
    )


def _visible(caller: Principal, row: AgentDeploymentRow) -> bool:
    return caller.has("admin") or caller.owner == row.owner


def _read_json(workspace: Path, path: str) -> dict[str, Any] | None:
    """A JSON object the runtime wrote into its (sandbox-writable) directory, read without following links."""
    try:
        data = json.loads(safefs.read_file(workspace, path, MAX_STATUS_BYTES).decode("utf-8"))
    except (OSError, ValueError, DomainError):
        return None
    return data if isinstance(data, dict) else None


def _tail(workspace: Path, path: str) -> str:
    try:
        return safefs.read_tail(workspace, path, LOG_TAIL_BYTES).decode("utf-8", "replace")
    except (OSError, DomainError):
        return ""


class DeploymentService:
    """Deploy, inspect, stop and talk to deployed agents."""

    def __init__(
        self,
        registry: AgentRegistry,
        sandboxes: SandboxService,
        *,
        monitor_interval: float = 2.0,
        start_timeout: float = 20.0,
        heartbeat_seconds: float = 1.0,
        lease_seconds: float = 60.0,
        python: str = sys.executable,
    ) -> None:
        self.registry = registry
        self.db = registry.db
        self.sandboxes = sandboxes
        self.monitor_interval = monitor_interval
        self.start_timeout = start_timeout
        self.heartbeat_seconds = heartbeat_seconds
        self.lease_seconds = lease_seconds
        self.python = python
        self.node_id = sandboxes.node_id
        self._live: dict[str, _Live] = {}
        self._launches: dict[str, asyncio.Task[None]] = {}
        self._monitor: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Mark deployments orphaned by a restart as failed and start the monitor."""
        prefix = self.sandboxes.settings.instance_name
        async with self.db.transaction() as s:
            rows = (await s.execute(select(AgentDeploymentRow).where(AgentDeploymentRow.status.in_(ACTIVE)))).scalars()
            for row in rows:
                if row.node_id is None or row.node_id.startswith(prefix):
                    row.status = FAILED
                    row.last_error = "the server restarted; the runtime did not survive it (deploy again)"
                    row.stopped_at = utcnow()
        self._stop.clear()
        self._monitor = asyncio.get_running_loop().create_task(self._monitor_loop())

    async def stop_all(self) -> None:
        """Server shutdown: stop every local runtime (their sandboxes go down with the server)."""
        self._stop.set()
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._monitor
        for task in list(self._launches.values()):
            task.cancel()
        await asyncio.gather(*self._launches.values(), return_exceptions=True)
        await asyncio.gather(
            *(self._halt(live, STOPPED, "the server shut down", delete=False) for live in list(self._live.values())),
            return_exceptions=True,
        )

    # ------------------------------------------------------------------ deploy

    async def deploy(
        self,
        caller: Principal,
        agent_id: str,
        *,
        environment: str = "development",
        config_overrides: dict[str, Any] | None = None,
        wait: float | None = None,
    ) -> AgentDeploymentRow:
        """Start a deployment; waits up to ``wait`` seconds (default: the start timeout) for it to run."""
        agent = await self.registry.get(caller, agent_id)
        overrides = dict(config_overrides or {})
        if len(json.dumps(overrides, default=str)) > MAX_OVERRIDES_BYTES:
            raise InvalidInput(f"config_overrides is larger than {MAX_OVERRIDES_BYTES} bytes")
        if not isinstance(environment, str) or not 1 <= len(environment) <= 64:
            raise InvalidInput("environment must be a string of 1-64 characters", details={"field": "environment"})
        profile = overrides.get("profile", "python-default")
        self.sandboxes.profiles.get(str(profile)).require("shell")
        row = AgentDeploymentRow(
            id=new_id("dep"),
            agent_id=agent.id,
            owner=caller.owner,
            environment=environment,
            config_overrides=overrides,
            status=DEPLOYING,
            node_id=self.node_id,
            snapshot={},
        )
        async with self.db.transaction() as s:
            s.add(row)
        task = asyncio.get_running_loop().create_task(self._launch(row.id, agent, str(profile)))
        self._launches[row.id] = task
        task.add_done_callback(self._forget_launch)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), self.start_timeout + 5 if wait is None else wait)
        return await self._row(caller, row.id)

    def _forget_launch(self, task: asyncio.Task[None]) -> None:
        for key, value in list(self._launches.items()):
            if value is task:
                self._launches.pop(key, None)

    async def _set(self, deployment_id: str, **values: Any) -> AgentDeploymentRow | None:
        async with self.db.transaction() as s:
            row = await s.get(AgentDeploymentRow, deployment_id)
            if row is None:
                return None
            for key, value in values.items():
                setattr(row, key, value)
        return row

    async def _launch(self, deployment_id: str, agent: SymbiontAgentRow, profile: str) -> None:
        async with self.db.session() as s:
            row = await s.get(AgentDeploymentRow, deployment_id)
        if row is None:
            return
        actor = _actor(row.owner)
        sandbox_id: str | None = None
        try:
            info = await self.sandboxes.create(actor, profile=profile)
            sandbox_id = info.id
            await self._set(deployment_id, sandbox_id=sandbox_id)
            workspace, _ = await self.sandboxes.files_of(actor, sandbox_id)
            live = _Live(deployment_id, sandbox_id, row.owner, workspace)
            await asyncio.to_thread(self._write_files, live, agent, row)
            command = (
                f"nohup {self.python} -s {AGENT_DIR}/runtime.py {AGENT_DIR} "
                f"> {AGENT_DIR}/runtime.log 2>&1 < /dev/null & echo $!"
            )
            result = await self.sandboxes.exec_shell(
                actor, sandbox_id, command, timeout=15, description=f"start agent deployment {deployment_id}"
            )
            if result.exit_code != 0:
                raise RuntimeError(f"could not start the runtime: {result.error or result.output}")
            status = await self._await_running(live)
            live.status = status
            self._live[deployment_id] = live
            await self._set(
                deployment_id,
                status=RUNNING,
                pid=int(status.get("pid") or 0) or None,
                started_at=_epoch(status.get("started_at")) or utcnow(),
                last_heartbeat_at=_epoch(status.get("heartbeat_at")),
                snapshot=status,
                last_error=None,
            )
            log.info("deployment %s of agent %s runs in sandbox %s", deployment_id, agent.id, sandbox_id)
        except asyncio.CancelledError:
            await self._cleanup_failed(deployment_id, sandbox_id, actor, "deployment cancelled")
            raise
        except Exception as exc:
            message = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
            log.warning("deployment %s failed: %s", deployment_id, message)
            await self._cleanup_failed(deployment_id, sandbox_id, actor, message)

    def _write_files(self, live: _Live, agent: SymbiontAgentRow, row: AgentDeploymentRow) -> None:
        ws = live.workspace
        for sub in ("inbox", "outbox"):
            with safefs.directory(ws, live.path(sub), create=True):
                pass
        safefs.write_file(ws, live.path("runtime.py"), RUNTIME_SOURCE.read_bytes())
        safefs.write_file(ws, live.path("agent.json"), json.dumps(agent_document(agent)).encode())
        config = {
            "deployment_id": row.id,
            "environment": row.environment,
            "config_overrides": row.config_overrides,
            "heartbeat_seconds": self.heartbeat_seconds,
            "lease_seconds": self.lease_seconds,
        }
        safefs.write_file(ws, live.path("config.json"), json.dumps(config, default=str).encode())
        safefs.touch(ws, live.path("lease"))

    async def _await_running(self, live: _Live) -> dict[str, Any]:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            status = await asyncio.to_thread(_read_json, live.workspace, live.path("status.json"))
            if status and status.get("state") == "running":
                return status
            if status and status.get("state") == "exited":
                break
            await asyncio.sleep(0.1)
        tail = await asyncio.to_thread(_tail, live.workspace, live.path("runtime.log"))
        raise RuntimeError(f"the agent runtime did not start: {tail.strip()[-1000:] or 'no output'}")

    async def _cleanup_failed(self, deployment_id: str, sandbox_id: str | None, actor: Principal, error: str) -> None:
        tail = None
        if sandbox_id is not None:
            with contextlib.suppress(Exception):
                workspace, _ = await self.sandboxes.files_of(actor, sandbox_id)
                tail = await asyncio.to_thread(_tail, workspace, f"{AGENT_DIR}/runtime.log")
            with contextlib.suppress(Exception):
                await self.sandboxes.delete(actor, sandbox_id)
        self._live.pop(deployment_id, None)
        await self._set(deployment_id, status=FAILED, last_error=error[:4000], stopped_at=utcnow(), log_tail=tail)

    # ------------------------------------------------------------------ read

    async def _row(self, caller: Principal, deployment_id: str) -> AgentDeploymentRow:
        async with self.db.session() as s:
            row = await s.get(AgentDeploymentRow, deployment_id)
        if row is None or not _visible(caller, row):
            raise NotFound(
                f"deployment {deployment_id} not found",
                code="deployment_not_found",
                details={"deployment_id": deployment_id},
            )
        return row

    async def get(self, caller: Principal, deployment_id: str) -> AgentDeploymentRow:
        return await self._row(caller, deployment_id)

    async def list(self, caller: Principal, agent_id: str | None = None) -> builtins.list[AgentDeploymentRow]:
        stmt = select(AgentDeploymentRow)
        if not caller.has("admin"):
            stmt = stmt.where(AgentDeploymentRow.owner == caller.owner)
        if agent_id:
            stmt = stmt.where(AgentDeploymentRow.agent_id == agent_id)
        async with self.db.session() as s:
            return list((await s.execute(stmt.order_by(AgentDeploymentRow.id.desc()))).scalars())

    async def for_agent(self, agent_id: str) -> builtins.list[AgentDeploymentRow]:
        async with self.db.session() as s:
            stmt = select(AgentDeploymentRow).where(AgentDeploymentRow.agent_id == agent_id)
            return list((await s.execute(stmt.order_by(AgentDeploymentRow.id.desc()))).scalars())

    async def usage(self, row: AgentDeploymentRow) -> dict[str, Any]:
        """Live runtime status (fresh ``status.json``) when it runs here, else the last snapshot."""
        live = self._live.get(row.id)
        if live is not None and row.status == RUNNING:
            status = await asyncio.to_thread(_read_json, live.workspace, live.path("status.json"))
            if status:
                live.status = status
            return dict(live.status)
        return dict(row.snapshot or {})

    async def sandbox_stats(self, row: AgentDeploymentRow) -> dict[str, Any] | None:
        """The sandbox's own stats (all its processes, kernel included) when it runs here."""
        if row.sandbox_id is None or row.id not in self._live:
            return None
        with contextlib.suppress(Exception):
            return await self.sandboxes.runtimes.stats(row.sandbox_id)
        return None

    async def logs(self, caller: Principal, deployment_id: str) -> str:
        row = await self._row(caller, deployment_id)
        live = self._live.get(row.id)
        if live is not None:
            return await asyncio.to_thread(_tail, live.workspace, live.path("runtime.log"))
        return row.log_tail or ""

    # ------------------------------------------------------------------ stop

    async def stop(self, caller: Principal, deployment_id: str) -> AgentDeploymentRow:
        """Stop a deployment (idempotent for stopped / failed ones)."""
        row = await self._row(caller, deployment_id)
        launch = self._launches.get(row.id)
        if launch is not None:
            launch.cancel()
            await asyncio.gather(launch, return_exceptions=True)
            row = await self._row(caller, deployment_id)
        if row.status in (STOPPED, FAILED):
            return row
        live = self._live.get(row.id)
        if live is None:
            if row.node_id != self.node_id:
                raise Conflict(
                    f"deployment {deployment_id} runs on another server ({row.node_id})",
                    code="deployment_remote",
                    details={"node_id": row.node_id},
                )
            await self._set(row.id, status=STOPPED, stopped_at=utcnow())
        else:
            await self._set(row.id, status=STOPPING)
            await self._halt(live, STOPPED, None, delete=True)
        return await self._row(caller, deployment_id)

    async def _halt(self, live: _Live, status: str, error: str | None, *, delete: bool) -> None:
        """Ask the runtime to exit, kill it if needed, persist the final snapshot, drop the sandbox."""
        self._live.pop(live.deployment_id, None)
        actor = _actor(live.owner)
        with contextlib.suppress(OSError, DomainError):
            await asyncio.to_thread(safefs.touch, live.workspace, live.path("stop"))
        final: dict[str, Any] | None = None
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            final = await asyncio.to_thread(_read_json, live.workspace, live.path("status.json"))
            if final and final.get("state") == "exited":
                break
            await asyncio.sleep(0.1)
        pid = (final or live.status).get("pid")
        running = self.sandboxes.runtimes.get(live.sandbox_id) is not None
        if running and not (final and final.get("state") == "exited") and pid:
            with contextlib.suppress(Exception):
                await self.sandboxes.exec_shell(
                    actor,
                    live.sandbox_id,
                    f"kill -9 {int(pid)} 2>/dev/null; true",
                    timeout=5,
                    description="stop agent runtime",
                )
        tail = await asyncio.to_thread(_tail, live.workspace, live.path("runtime.log"))
        snapshot = final or live.status
        await self._set(
            live.deployment_id,
            status=status,
            stopped_at=utcnow(),
            snapshot={**snapshot, "active_tasks": 0},
            log_tail=tail,
            last_error=error,
        )
        with contextlib.suppress(Exception):
            if delete:
                await self.sandboxes.delete(actor, live.sandbox_id)
            else:
                await self.sandboxes.stop(actor, live.sandbox_id)

    # ------------------------------------------------------------------ tasks

    async def submit_task(
        self, caller: Principal, deployment_id: str, *, action: str = "run", payload: Any = None
    ) -> dict[str, Any]:
        """Queue a task for a running deployment; returns ``{"task_id", "status": "queued"}``."""
        row = await self._row(caller, deployment_id)
        live = self._live.get(row.id)
        if row.status != RUNNING or live is None:
            raise Conflict(
                f"deployment {deployment_id} is {row.status}, not running here",
                code="deployment_not_running",
                details={"status": row.status},
            )
        if not isinstance(action, str) or not 1 <= len(action) <= 200:
            raise InvalidInput("action must be a string of 1-200 characters")
        task_id = new_id("task")
        body = json.dumps({"id": task_id, "action": action, "input": payload}, default=str)
        if len(body) > MAX_TASK_BYTES:
            raise InvalidInput(f"task is larger than {MAX_TASK_BYTES} bytes")

        await asyncio.to_thread(safefs.write_file, live.workspace, live.path(f"inbox/{task_id}.json"), body.encode())
        return {"task_id": task_id, "deployment_id": row.id, "status": "queued"}

    async def task(self, caller: Principal, deployment_id: str, task_id: str) -> dict[str, Any]:
        """A task's result, or ``{"status": "queued"}`` while it waits."""
        row = await self._row(caller, deployment_id)
        live = self._live.get(row.id)
        if live is None or not task_id.startswith("task_") or "/" in task_id:
            raise NotFound(f"task {task_id} not found", code="task_not_found")
        done = await asyncio.to_thread(_read_json, live.workspace, live.path(f"outbox/{task_id}.json"))
        if done is not None:
            return {"task_id": task_id, **done}
        if await asyncio.to_thread(safefs.exists, live.workspace, live.path(f"inbox/{task_id}.json")):
            return {"task_id": task_id, "status": "queued"}
        raise NotFound(f"task {task_id} not found", code="task_not_found")

    # ------------------------------------------------------------------ monitor

    async def _monitor_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.check()
            except Exception:  # keep watching
                log.exception("deployment monitor failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.monitor_interval)

    async def check(self) -> None:
        """One monitor pass: renew leases, keep sandboxes alive, detect dead runtimes, save snapshots."""
        now = time.monotonic()
        stale_after = max(10.0, 5 * self.heartbeat_seconds)
        for live in list(self._live.values()):
            with contextlib.suppress(OSError, DomainError):
                await asyncio.to_thread(safefs.touch, live.workspace, live.path("lease"))
            status = await asyncio.to_thread(_read_json, live.workspace, live.path("status.json"))
            if status:
                live.status = status
            beat = float(live.status.get("heartbeat_at") or 0)
            handle_alive = self.sandboxes.runtimes.get(live.sandbox_id) is not None
            if live.status.get("state") == "exited" or time.time() - beat > stale_after or not handle_alive:
                reason = live.status.get("exit_reason") or (
                    "the sandbox stopped" if not handle_alive else "the runtime stopped sending heartbeats"
                )
                log.warning("deployment %s failed: %s", live.deployment_id, reason)
                await self._halt(live, FAILED, f"agent runtime exited: {reason}", delete=False)
                continue
            if now - live.last_keepalive > 60:
                live.last_keepalive = now
                with contextlib.suppress(Exception):
                    await self.sandboxes.keepalive(_actor(live.owner), live.sandbox_id)
            if now - live.last_persist > 15:
                live.last_persist = now
                await self._set(live.deployment_id, snapshot=live.status, last_heartbeat_at=_epoch(beat))

    # ------------------------------------------------------------------ per-agent views

    async def agent_status(self, caller: Principal, agent_id: str) -> dict[str, Any]:
        """Symbiont ``AgentStatusResponse`` (+ deployments): state and live resource usage."""
        agent = await self.registry.get(caller, agent_id)
        rows = await self.for_agent(agent.id)
        running = [r for r in rows if r.status == RUNNING]
        usages = [await self.usage(r) for r in running]
        active_tasks = sum(int(u.get("active_tasks") or 0) for u in usages)
        if running:
            state = "busy" if active_tasks else "active"
        elif rows and rows[0].status == FAILED:
            state = "error"
        elif rows and rows[0].status in (DEPLOYING, STOPPING):
            state = "busy"
        elif rows:
            state = "stopped"
        else:
            state = "idle"
        activity = [_epoch(u.get("last_activity")) for u in usages]
        activity += [r.updated_at for r in rows[:1]]
        last = max([a for a in activity if a is not None], default=agent.updated_at)
        sandboxes = [await self.sandbox_stats(r) for r in running]
        return {
            "agent_id": agent.id,
            "state": state,
            "last_activity": isoformat(last),
            "resource_usage": {
                "memory_bytes": sum(int(u.get("memory_bytes") or 0) for u in usages),
                "cpu_percent": round(sum(float(u.get("cpu_percent") or 0.0) for u in usages), 2),
                "active_tasks": active_tasks,
            },
            "uptime_seconds": int(max((float(u.get("uptime_seconds") or 0) for u in usages), default=0)),
            "deployments": [r.id for r in running],
            "sandboxes": [{"sandbox_id": r.sandbox_id, **(st or {})} for r, st in zip(running, sandboxes, strict=True)],
        }

    async def agent_metrics(self, caller: Principal, agent_id: str) -> dict[str, Any]:
        """Symbiont ``AgentMetrics``: task counters over every deployment, live usage of running ones."""
        agent = await self.registry.get(caller, agent_id)
        rows = await self.for_agent(agent.id)
        completed = failed = 0
        total_ms = 0.0
        memory = 0
        cpu = 0.0
        uptime = 0.0
        last: datetime | None = None
        for row in rows:
            u = await self.usage(row)
            done_here = int(u.get("tasks_completed") or 0)
            failed_here = int(u.get("tasks_failed") or 0)
            completed += done_here
            failed += failed_here
            total_ms += float(u.get("average_response_time_ms") or 0.0) * (done_here + failed_here)
            if row.status == RUNNING:
                memory += int(u.get("memory_bytes") or 0)
                cpu += float(u.get("cpu_percent") or 0.0)
                uptime = max(uptime, float(u.get("uptime_seconds") or 0.0))
            seen = _epoch(u.get("last_activity"))
            if seen is not None and (last is None or seen > last):
                last = seen
        count = completed + failed
        return {
            "agent_id": agent.id,
            "tasks_completed": completed,
            "tasks_failed": failed,
            "average_response_time_ms": round(total_ms / count, 3) if count else 0.0,
            "memory_usage_bytes": memory,
            "cpu_usage_percent": round(cpu, 2),
            "last_activity": isoformat(last or agent.updated_at),
            "uptime_seconds": int(uptime),
            "deployments_total": len(rows),
            "deployments_running": len([r for r in rows if r.status == RUNNING]),
        }

    async def counts(self) -> dict[str, int]:
        async with self.db.session() as s:
            rows = (await s.execute(select(AgentDeploymentRow.status))).scalars()
            out: dict[str, int] = {}
            for status in rows:
                out[status] = out.get(status, 0) + 1
        return out
