"""``WorkersService``: submit, inspect, wait for and cancel tasks; the broker serves the workers.

Registered as ``ctx.services["workers"]``. Other areas (the flows engine) call it directly::

    svc: WorkersService = ctx.services["workers"]
    task = await svc.submit_task("acme/images/resize", {"url": u}, owner=principal.owner)
    task = await svc.wait_task(task.id, timeout=30)
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from portside.server import tracing
from portside.server.clock import utcnow
from portside.server.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from portside.server.ids import new_id
from portside.server.metrics.instruments import TASKS_SUBMITTED
from portside.server.store import Database
from portside.server.workers.batch import Op
from portside.server.workers.broker import LEASE_CANCELLED, Broker, Claim
from portside.server.workers.capabilities import check_capability_type, schema_errors
from portside.server.workers.config import WorkersConfig
from portside.server.workers.domain import (
    CANCELLED,
    QUEUED,
    RUNNING,
    TASK_STATUSES,
    TERMINAL,
    Lease,
    ProgressEntry,
    Task,
    WorkerInfo,
)
from portside.server.workers.notify import Notifier, make_notifier
from portside.server.workers.registry import CapabilityRegistry
from portside.server.workers.rows import LEASES, PROGRESS, TASKS, WORKERS, lease_from, progress_from, task_from
from portside.server.workers.store import Exec, WorkersStore
from portside.server.workers.waiters import TaskWaiters

MAX_TIMEOUT_S = 30 * 24 * 3600.0
MAX_LIST = 500


@dataclass(frozen=True)
class TaskSpec:
    """What to run: one task submission."""

    capability: str
    input: Any
    on_behalf_of: str | None = None
    idempotency_key: str | None = None
    timeout_s: float | None = None
    max_attempts: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    workflow_id: str | None = None


@dataclass
class _Submit:
    owner: str
    spec: TaskSpec
    max_attempts: int


class WorkersService:
    """Tasks for typed capabilities, executed by workers holding leases."""

    def __init__(self, db: Database, config: WorkersConfig | None = None, notifier: Notifier | None = None) -> None:
        self.db = db
        self.config = config or WorkersConfig()
        self.notifier = notifier or make_notifier(self.config.replica_id, db.url)
        self.store = WorkersStore(db)
        self.capabilities = CapabilityRegistry(db, self.store)
        self.broker = Broker(db, self.config, self.notifier, self.capabilities, self.store)
        self.broker.commit.register("submit", self._apply_submits)
        self.waiters = TaskWaiters()
        self.notifier.subscribe(self._on_event)

    async def start(self) -> None:
        """Start the background loops (called from the app's start hooks)."""
        await self.notifier.start()
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()
        await self.notifier.stop()
        self.store.close()

    def _on_event(self, event: str, payload: dict[str, Any]) -> None:
        if event in ("done", "progress"):
            self.waiters.notify(payload.get("ids", []))
        elif event == "resync":
            self.waiters.notify_all()

    # -- submit -------------------------------------------------------------------------------

    async def submit_task(
        self,
        capability: str,
        input: Any,
        on_behalf_of: str | None = None,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
        *,
        owner: str,
        max_attempts: int | None = None,
        metadata: dict[str, Any] | None = None,
        workflow_id: str | None = None,
    ) -> Task:
        """Queue a task for ``capability``; committed before it returns.

        ``input`` is checked against the capability's input schema when one is defined. The same
        ``idempotency_key`` (per owner) returns the first task instead of a new one; reusing it
        with a different capability or input is a 409 ``idempotency_key_reused``.
        """
        spec = TaskSpec(
            capability=capability,
            input=input,
            on_behalf_of=on_behalf_of,
            idempotency_key=idempotency_key,
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            metadata=dict(metadata or {}),
            workflow_id=workflow_id,
        )
        if not tracing.enabled():
            prepared = await self._prepare(spec, owner)
            task: Task = await self.broker.commit.run("submit", prepared)
            return task
        with tracing.span(f"task.submit {capability}", {"portside.task.capability": capability}) as span:
            prepared = await self._prepare(replace(spec, metadata=tracing.inject(spec.metadata)), owner)
            task = await self.broker.commit.run("submit", prepared)
            span.set_attribute("portside.task.id", task.id)
            return task

    async def submit_tasks(self, specs: list[TaskSpec], *, owner: str) -> list[Task]:
        """Submit many tasks (validated first: one bad spec rejects the whole request)."""
        if len(specs) > 1000:
            raise InvalidInput("at most 1000 tasks per batch", code="batch_too_large")
        if tracing.enabled():  # each task continues the batch's trace
            specs = [replace(spec, metadata=tracing.inject(spec.metadata)) for spec in specs]
        prepared = [await self._prepare(spec, owner, index=i) for i, spec in enumerate(specs)]
        results = await asyncio.gather(*(self.broker.commit.run("submit", p) for p in prepared))
        return list(results)

    async def _prepare(self, spec: TaskSpec, owner: str, index: int | None = None) -> _Submit:
        where = {} if index is None else {"index": index}
        check_capability_type(spec.capability)
        if spec.on_behalf_of is not None and (not spec.on_behalf_of or len(spec.on_behalf_of) > 200):
            raise InvalidInput("on_behalf_of must be 1-200 characters", code="invalid_on_behalf_of", details=where)
        if spec.timeout_s is not None and not 0 < spec.timeout_s <= MAX_TIMEOUT_S:
            raise InvalidInput(f"timeout_s must be in (0, {MAX_TIMEOUT_S:.0f}]", code="invalid_timeout", details=where)
        if spec.max_attempts is not None and not 1 <= spec.max_attempts <= 100:
            raise InvalidInput("max_attempts must be in 1..100", code="invalid_max_attempts", details=where)
        if spec.idempotency_key is not None and not 1 <= len(spec.idempotency_key) <= 255:
            raise InvalidInput(
                "idempotency_key must be 1-255 characters", code="invalid_idempotency_key", details=where
            )
        if not isinstance(spec.metadata, dict):
            raise InvalidInput("metadata must be an object", code="validation_error", details=where)
        try:
            size = len(json.dumps(spec.input, separators=(",", ":")))
        except (TypeError, ValueError) as exc:
            raise InvalidInput("input must be JSON", code="invalid_input", details=where) from exc
        if size > self.config.max_input_bytes:
            raise PayloadTooLarge(
                f"input is {size} bytes; the limit is {self.config.max_input_bytes}",
                details={**where, "limit": self.config.max_input_bytes},
            )
        cdef = await self.capabilities.get(spec.capability)
        if cdef is not None:
            errors = schema_errors(cdef.input_schema, spec.input)
            if errors:
                raise InvalidInput(
                    f"input does not match the input schema of {spec.capability}: {errors[0]['message']}",
                    code="input_schema_mismatch",
                    details={**where, "errors": errors},
                )
        attempts = spec.max_attempts or (cdef.max_attempts if cdef else None) or self.config.default_max_attempts
        return _Submit(owner=owner, spec=spec, max_attempts=attempts)

    async def _apply_submits(self, s: Exec, ops: list[Op]) -> None:
        now = utcnow()
        keyed: dict[str, set[str]] = {}
        for op in ops:
            sub: _Submit = op.payload
            if sub.spec.idempotency_key:
                keyed.setdefault(sub.owner, set()).add(sub.spec.idempotency_key)
        existing: dict[tuple[str, str], Task] = {}
        for owner, keys in keyed.items():
            found = (
                await s.execute(select(TASKS).where(TASKS.c.owner == owner, TASKS.c.idempotency_key.in_(sorted(keys))))
            ).mappings()
            for m in found:
                existing[(owner, m["idempotency_key"])] = task_from(m)
        rows: list[dict[str, Any]] = []
        caps: set[str] = set()
        for op in ops:
            sub = op.payload
            spec = sub.spec
            if spec.idempotency_key:
                prior = existing.get((sub.owner, spec.idempotency_key))
                if prior is not None:
                    if prior.capability != spec.capability or prior.input != spec.input:
                        op.error = Conflict(
                            "this idempotency_key was used for a different task",
                            code="idempotency_key_reused",
                            details={"task_id": prior.id},
                        )
                    else:
                        op.result = prior
                    continue
            row = {
                "id": new_id("tsk"),
                "owner": sub.owner,
                "capability": spec.capability,
                "on_behalf_of": spec.on_behalf_of,
                "status": QUEUED,
                "input": spec.input,
                "output": None,
                "error": None,
                "progress": None,
                "attempt": 0,
                "max_attempts": sub.max_attempts,
                "idempotency_key": spec.idempotency_key,
                "timeout_s": spec.timeout_s,
                "deadline_at": now + timedelta(seconds=spec.timeout_s) if spec.timeout_s else None,
                "available_at": now,
                "lease_id": None,
                "worker_id": None,
                "lease_expires_at": None,
                "cancel_requested": False,
                "metadata": spec.metadata,
                "workflow_id": spec.workflow_id,
                "started_at": None,
                "finished_at": None,
                "created_at": now,
                "updated_at": now,
            }
            rows.append(row)
            task = task_from(row)
            op.result = task
            caps.add(spec.capability)
            if spec.idempotency_key:
                existing[(sub.owner, spec.idempotency_key)] = task
        if rows:
            await s.execute(TASKS.insert(), rows)
            claim = await self._claim_now(s, caps)
            if claim is not None:
                ops[-1].undo.append(lambda: self.broker.abandon(claim))
            undispatched = sorted(caps if claim is None else caps - claim.drained)

            submitted = len(rows)

            def after() -> None:
                TASKS_SUBMITTED.inc(submitted)
                if claim is not None:
                    self.broker.deliver(claim)
                if undispatched:
                    self.notifier.publish("ready", {"c": undispatched})
                elif caps:
                    self.notifier.publish_remote("ready", {"c": sorted(caps)})

            ops[-1].after.append(after)

    async def _claim_now(self, s: Exec, caps: set[str]) -> Claim | None:
        """Lease new tasks to free local workers inside the submit's own transaction.

        The claim takes the oldest queued tasks first, so order is kept; it is skipped when a
        dispatch round is running (that round, woken after commit, picks the tasks up).
        """
        demand = self.broker.local_demand(caps)
        if not demand or not self.broker.try_claim_lock():
            return None
        claim = Claim()
        try:
            await self.broker.claim(s, demand, claim)
        except BaseException:
            self.broker.abandon(claim)
            raise
        finally:
            self.broker.release_claim_lock()
        return claim

    # -- read ---------------------------------------------------------------------------------

    async def get_task(self, task_id: str, *, owner: str | None = None) -> Task:
        """A task by id; with ``owner``, only that owner's (others are 404)."""
        async with self.store.read() as s:
            m = (await s.execute(select(TASKS).where(TASKS.c.id == task_id))).mappings().first()
        if m is None or (owner is not None and m["owner"] != owner):
            raise NotFound(f"task {task_id} not found", code="task_not_found")
        return task_from(m)

    async def list_tasks(
        self,
        *,
        owner: str | None = None,
        status: str | None = None,
        capability: str | None = None,
        worker_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Task], str | None]:
        """Newest first; returns (tasks, next cursor)."""
        if status is not None and status not in TASK_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(TASK_STATUSES)}", code="invalid_status")
        limit = max(1, min(MAX_LIST, limit))
        query = select(TASKS)
        if owner is not None:
            query = query.where(TASKS.c.owner == owner)
        if status is not None:
            query = query.where(TASKS.c.status == status)
        if capability is not None:
            query = query.where(TASKS.c.capability == capability)
        if worker_id is not None:
            query = query.where(TASKS.c.worker_id == worker_id)
        if cursor:
            query = query.where(TASKS.c.id < cursor)
        query = query.order_by(TASKS.c.id.desc()).limit(limit + 1)
        async with self.store.read() as s:
            rows = (await s.execute(query)).mappings().all()
        tasks = [task_from(m) for m in rows[:limit]]
        return tasks, (tasks[-1].id if len(rows) > limit else None)

    async def task_counts(self, *, owner: str | None = None, capability: str | None = None) -> dict[str, int]:
        """Number of tasks in each status."""
        query = select(TASKS.c.status, func.count()).group_by(TASKS.c.status)
        if owner is not None:
            query = query.where(TASKS.c.owner == owner)
        if capability is not None:
            query = query.where(TASKS.c.capability == capability)
        async with self.store.read() as s:
            found = {str(row[0]): int(row[1]) for row in (await s.execute(query)).all()}
        return {status: found.get(status, 0) for status in TASK_STATUSES}

    async def task_progress(self, task_id: str, *, owner: str | None = None, limit: int = 200) -> list[ProgressEntry]:
        """Progress reports of a task, oldest first."""
        await self.get_task(task_id, owner=owner)
        async with self.store.read() as s:
            rows = (
                await s.execute(
                    select(PROGRESS).where(PROGRESS.c.task_id == task_id).order_by(PROGRESS.c.id).limit(limit)
                )
            ).mappings()
            return [progress_from(m) for m in rows]

    async def task_leases(self, task_id: str, *, owner: str | None = None) -> list[Lease]:
        """Every delivery (attempt) of a task."""
        await self.get_task(task_id, owner=owner)
        async with self.store.read() as s:
            rows = (
                await s.execute(select(LEASES).where(LEASES.c.task_id == task_id).order_by(LEASES.c.issued_at))
            ).mappings()
            return [lease_from(m) for m in rows]

    async def wait_task(self, task_id: str, timeout: float | None = 30.0, *, owner: str | None = None) -> Task:
        """Wait until the task is done or ``timeout`` seconds pass (None: until done); returns its latest state.

        Woken in-process when a result lands on this replica (or via NOTIFY from another), with
        store polling as a fallback.
        """
        deadline = float("inf") if timeout is None else time.monotonic() + max(0.0, timeout)
        with self.waiters.watch(task_id) as event:
            while True:
                event.clear()
                task = await self.get_task(task_id, owner=owner)
                remaining = deadline - time.monotonic()
                if task.status in TERMINAL or remaining <= 0:
                    return task
                try:
                    await asyncio.wait_for(event.wait(), min(remaining, self.config.poll_interval_s))
                except asyncio.TimeoutError:
                    pass

    # -- cancel -------------------------------------------------------------------------------

    async def cancel_task(self, task_id: str, *, owner: str | None = None, reason: str = "cancelled") -> Task:
        """Cancel a task: queued ones stop at once; a running one's lease ends and its worker is told.

        Cancelling a finished task changes nothing and returns it.
        """
        now = utcnow()
        cancel: tuple[str, str, str] | None = None
        for _ in range(3):
            async with self.store.read() as s:
                current = (await s.execute(select(TASKS).where(TASKS.c.id == task_id))).mappings().first()
            if current is None or (owner is not None and current["owner"] != owner):
                raise NotFound(f"task {task_id} not found", code="task_not_found")
            if current["status"] in TERMINAL:
                return task_from(current)
            async with self.store.tx() as s:
                lease_id = current["lease_id"]
                if lease_id:  # lock order: lease, then task (as results do)
                    await s.execute(select(LEASES.c.id).where(LEASES.c.id == lease_id).with_for_update())
                m = (await s.execute(select(TASKS).where(TASKS.c.id == task_id).with_for_update())).mappings().first()
                if m is None or m["lease_id"] != lease_id or m["status"] != current["status"]:
                    continue  # changed under us: look again
                error = {"code": "cancelled", "message": reason[:2000]}
                await s.execute(
                    update(TASKS)
                    .where(TASKS.c.id == task_id)
                    .values(status=CANCELLED, cancel_requested=True, finished_at=now, updated_at=now, error=error)
                )
                if m["status"] == RUNNING and lease_id:
                    await s.execute(
                        update(LEASES)
                        .where(LEASES.c.id == lease_id, LEASES.c.state == "active")
                        .values(state=LEASE_CANCELLED, ended_at=now, outcome={"kind": "cancelled", "reason": reason})
                    )
                    cancel = (lease_id, m["worker_id"], reason[:500] or "cancelled")
            break
        else:
            raise Conflict(f"task {task_id} keeps changing; retry", code="conflict")
        if cancel is not None:
            self.broker.send_cancels([cancel])
        self.notifier.publish("done", {"ids": [task_id]})
        return await self.get_task(task_id)

    # -- workers ------------------------------------------------------------------------------

    async def list_workers(self, *, owner: str | None = None, with_leases: bool = True) -> list[WorkerInfo]:
        """Registered workers (an owner's, or all), with their active leases."""
        query = select(WORKERS).order_by(WORKERS.c.id)
        if owner is not None:
            query = query.where(WORKERS.c.owner == owner)
        async with self.store.read() as s:
            rows = (await s.execute(query)).mappings().all()
            leases: dict[str, list[Lease]] = {}
            if with_leases and rows:
                found = (
                    await s.execute(
                        select(LEASES)
                        .where(LEASES.c.worker_id.in_([r["id"] for r in rows]), LEASES.c.state == "active")
                        .order_by(LEASES.c.issued_at)
                    )
                ).mappings()
                for m in found:
                    leases.setdefault(m["worker_id"], []).append(lease_from(m))
        return [self._worker(m, leases.get(m["id"], [])) for m in rows]

    async def get_worker(self, worker_id: str, *, owner: str | None = None) -> WorkerInfo:
        for worker in await self.list_workers(owner=owner):
            if worker.id == worker_id:
                return worker
        raise NotFound(f"worker {worker_id} not found", code="worker_not_found")

    def _worker(self, m: Any, leases: list[Lease]) -> WorkerInfo:
        local = self.broker.sessions.get(m["id"])
        status = m["status"]
        if local is not None and not local.closed:
            status = "connected"
        return WorkerInfo(
            id=m["id"],
            owner=m["owner"],
            kind=m["kind"],
            protocol_version=m["protocol_version"],
            capabilities=list(m["capabilities"] or []),
            labels=dict(m["labels"] or {}),
            status=status,
            session_id=m["session_id"],
            registered_at=m["registered_at"],
            connected_at=m["connected_at"],
            disconnected_at=m["disconnected_at"],
            last_heartbeat_at=m["last_heartbeat_at"],
            leases=leases,
        )
