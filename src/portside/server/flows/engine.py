"""The durable flow engine.

State lives in the store. An engine *leases* an execution (``lease_owner``/``lease_token`` on the
row, renewed by a heartbeat) and drives it: nodes run as asyncio tasks in dependency order, as
many at once as the DAG and ``max_parallel`` allow. Every state change is written in a
transaction fenced by the lease (``WHERE lease_owner = me AND lease_token = t``), so an engine that
lost its lease can never write again, and a node's completion is only ever recorded once
(``WHERE status != 'completed'``).

After a crash the lease expires (or, for a dead process on this host, is taken over at once) and
an engine resumes the execution: completed nodes keep their recorded outputs; nodes that were
running are attempted again (worker tasks are re-attached, not resubmitted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.exc import DBAPIError

from portside.server import tracing
from portside.server.clock import isoformat, utcnow
from portside.server.flows.config import FlowSettings
from portside.server.flows.events import ExecutionHub
from portside.server.flows.executors import ExecutorRegistry, NodeCall, NodeError, output_size
from portside.server.flows.expr import ExpressionError, evaluate, render
from portside.server.flows.models import ExecutionRow, NodeRunRow
from portside.server.flows.schema import (
    TERMINAL_EXECUTION,
    FlowDefinition,
    NodeSpec,
    _NodeFields,
    node_timeout,
    retry_policy,
)
from portside.server.flows.service import FlowService
from portside.server.flows.writer import EXEC, NODES, LeaseLost, StateWrite, WriteQueue
from portside.server.metrics.instruments import FLOW_EXECUTION_DURATION, FLOW_EXECUTIONS, FLOW_NODE_DURATION
from portside.server.store import Database

log = logging.getLogger("portside.flows.engine")

#: Engine ids alive in this process (so two apps in one process never steal each other's leases).
_LIVE_OWNERS: set[str] = set()
_EXTRA_RESUMES = 3  # a node interrupted this many times beyond its retry budget fails


@dataclass
class NodeState:
    """The runner's view of one node run."""

    node_id: str
    kind: str
    status: str
    attempts: int
    output: Any = None
    parent_id: str | None = None
    external_ref: str | None = None
    attempt_log: list[Any] = field(default_factory=list)
    started_at: datetime | None = None
    interrupted: bool = False


@dataclass
class Outcome:
    """How a node ended."""

    ok: bool
    output: Any = None
    error: NodeError | None = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Engine:
    """Claims executions from the store and runs them; one per app instance."""

    def __init__(
        self,
        db: Database,
        flows: FlowService,
        executors: ExecutorRegistry,
        hub: ExecutionHub,
        settings: FlowSettings,
        services: Mapping[str, Any],
    ) -> None:
        self.db = db
        self.flows = flows
        self.executors = executors
        self.hub = hub
        self.settings = settings
        self.services = services
        self.host = settings.node_name or socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{secrets.token_hex(4)}"
        self.http: httpx.AsyncClient | None = None
        self.writer = WriteQueue(db, self._written)
        self.stopping = False
        self.started = False
        self._runners: dict[str, Runner] = {}
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self.counters: dict[str, int] = {"claimed": 0, "adopted": 0, "resumed": 0, "lost_leases": 0}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.http = httpx.AsyncClient(
            timeout=30.0, limits=httpx.Limits(max_connections=512, max_keepalive_connections=64)
        )
        _LIVE_OWNERS.add(self.owner)
        self.writer.start()
        self.started = True
        self._loops = [
            asyncio.create_task(self._dispatch_loop(), name="flows-dispatch"),
            asyncio.create_task(self._heartbeat_loop(), name="flows-heartbeat"),
        ]

    async def stop(self) -> None:
        """Stop claiming, interrupt running executions and hand their leases back."""
        self.stopping = True
        for task in self._loops:
            task.cancel()
        runners = list(self._runners.values())
        for runner in runners:
            if runner.task is not None:
                runner.task.cancel()
        pending = [r.task for r in runners if r.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=10)
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.writer.stop()
        _LIVE_OWNERS.discard(self.owner)
        if self.http is not None:
            await self.http.aclose()

    # ------------------------------------------------------------------ public hooks

    @property
    def running(self) -> int:
        return len(self._runners)

    def can_adopt(self) -> bool:
        """True when a new execution can be driven here straight away."""
        return self.started and not self.stopping and len(self._runners) < self.settings.max_running

    def adopt(self, execution_id: str, token: int) -> None:
        """Drive an execution whose lease this engine already holds."""
        if self.stopping or execution_id in self._runners:
            return
        self.counters["adopted"] += 1
        self._spawn(execution_id, token)

    def wake(self) -> None:
        """Look for claimable work now."""
        self._wake.set()

    def signal_cancel(self, execution_id: str) -> None:
        runner = self._runners.get(execution_id)
        if runner is not None:
            runner.cancel_event.set()

    def _written(self, change: StateWrite) -> None:
        self.hub.publish(change.execution_id, finished=change.execution.get("status") in TERMINAL_EXECUTION)

    def _spawn(self, execution_id: str, token: int) -> None:
        runner = Runner(self, execution_id, token)
        self._runners[execution_id] = runner
        runner.task = asyncio.create_task(runner.run(), name=f"flow-exec-{execution_id}")

    def _forget(self, runner: Runner) -> None:
        if self._runners.get(runner.execution_id) is runner:
            del self._runners[runner.execution_id]

    # ------------------------------------------------------------------ claiming

    def _reclaimable(self, lease_owner: str) -> bool:
        """A lease held by a dead process of this host can be taken over before it expires."""
        if lease_owner == self.owner or lease_owner in _LIVE_OWNERS:
            return False
        parts = lease_owner.split(":")
        if len(parts) < 3:
            return False
        host = ":".join(parts[:-2])
        try:
            pid = int(parts[-2])
        except ValueError:
            return False
        if host != self.host:
            return False
        return pid == os.getpid() or not _pid_alive(pid)

    async def claim(self) -> int:
        """Lease as many runnable executions as there is room for; returns how many."""
        room = self.settings.max_running - len(self._runners)
        if room <= 0 or self.stopping:
            return 0
        now = utcnow()
        stmt = (
            select(EXEC.c.id, EXEC.c.lease_owner, EXEC.c.lease_expires_at, EXEC.c.lease_token)
            .where(
                EXEC.c.status.in_(("pending", "running")),
                or_(
                    EXEC.c.lease_owner.is_(None),
                    EXEC.c.lease_expires_at < now,
                    EXEC.c.lease_owner.like(f"{self.host}:%"),
                ),
            )
            .order_by(EXEC.c.created_at)
            .limit(room * 2)
        )
        async with self.db.session() as s:
            candidates = (await s.execute(stmt)).all()
        chosen = []
        for exec_id, owner, expires, token in candidates:
            if exec_id in self._runners:
                continue
            if owner is not None and expires is not None and expires >= now and not self._reclaimable(owner):
                continue
            chosen.append((exec_id, token))
            if len(chosen) >= room:
                break
        if not chosen:
            return 0
        won: list[tuple[str, int]] = []
        expires_at = now + timedelta(seconds=self.settings.lease_seconds)
        async with self.db.transaction() as s:
            for exec_id, token in sorted(chosen):
                result = await s.execute(
                    update(EXEC)
                    .where(EXEC.c.id == exec_id, EXEC.c.lease_token == token)
                    .values(lease_owner=self.owner, lease_expires_at=expires_at, lease_token=token + 1)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    won.append((exec_id, token + 1))
        for exec_id, token in won:
            self.counters["claimed"] += 1
            self._spawn(exec_id, token)
        return len(won)

    async def _dispatch_loop(self) -> None:
        while not self.stopping:
            self._wake.clear()
            try:
                await self.claim()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming executions failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)
            except asyncio.TimeoutError:
                pass

    async def _heartbeat_loop(self) -> None:
        interval = min(self.settings.lease_seconds / 3, 1.0)
        while not self.stopping:
            await asyncio.sleep(interval)
            try:
                await self.heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("renewing leases failed")

    async def heartbeat(self) -> None:
        """Renew our leases; notice executions taken from us or asked to cancel."""
        ids = sorted(self._runners)
        if not ids:
            return
        expires_at = utcnow() + timedelta(seconds=self.settings.lease_seconds)
        async with self.db.transaction() as s:
            # lock in id order, like the writer's batches, so the two never deadlock
            rows = (
                await s.execute(
                    select(EXEC.c.id, EXEC.c.lease_owner, EXEC.c.cancel_requested)
                    .where(EXEC.c.id.in_(ids))
                    .order_by(EXEC.c.id)
                    .with_for_update()
                )
            ).all()
            await s.execute(
                update(EXEC)
                .where(EXEC.c.id.in_(ids), EXEC.c.lease_owner == self.owner)
                .values(lease_expires_at=expires_at)
            )
        for exec_id, owner, cancel in rows:
            runner = self._runners.get(exec_id)
            if runner is None:
                continue
            if owner != self.owner and runner.task is not None:
                self.counters["lost_leases"] += 1
                runner.lost = True
                runner.task.cancel()
            elif cancel:
                runner.cancel_event.set()


class Runner:
    """Drives one execution while its lease is held."""

    def __init__(self, engine: Engine, execution_id: str, token: int) -> None:
        self.engine = engine
        self.execution_id = execution_id
        self.token = token
        self.task: asyncio.Task[None] | None = None
        self.cancel_event = asyncio.Event()
        self.lost = False
        self.final_status: str | None = None  # set when this runner writes the execution's end
        self.flow: FlowDefinition | None = None
        self.input: dict[str, Any] = {}
        self.owner = "admin"
        self.deadline: datetime | None = None
        self.states: dict[str, NodeState] = {}
        self._node_tasks: dict[asyncio.Task[Outcome], str] = {}

    # ------------------------------------------------------------------ store writes (fenced)

    async def _write(
        self,
        nodes: list[tuple[str, dict[str, Any]]] | None = None,
        execution: dict[str, Any] | None = None,
        inserts: list[dict[str, Any]] | None = None,
        sweep: dict[str, Any] | None = None,
    ) -> None:
        """Commit a change fenced by our lease (group-committed with other executions' changes)."""
        change = StateWrite(
            execution_id=self.execution_id,
            owner=self.engine.owner,
            token=self.token,
            execution=execution or {},
            nodes=nodes or [],
            inserts=inserts or [],
            sweep=sweep,
        )
        await self.engine.writer.write(change)

    def _release_values(self) -> dict[str, Any]:
        return {"lease_owner": None, "lease_expires_at": None}

    async def _release(self) -> None:
        """Hand the lease back (shutdown) so any engine can resume at once."""
        async with self.engine.db.transaction() as s:
            await s.execute(
                update(EXEC)
                .where(
                    EXEC.c.id == self.execution_id,
                    EXEC.c.lease_owner == self.engine.owner,
                    EXEC.c.lease_token == self.token,
                )
                .values(**self._release_values())
            )

    # ------------------------------------------------------------------ main loop

    async def run(self) -> None:
        started = time.perf_counter()
        try:
            await self._run()
        except LeaseLost:
            log.info("execution %s: lease lost; another engine continues it", self.execution_id)
        except DBAPIError as exc:
            # the store is unreachable: drop the execution without judging it; it resumes from the
            # store once the lease is released (below) or expires
            log.warning("execution %s: store error, will resume: %s", self.execution_id, type(exc).__name__)
            with contextlib.suppress(Exception):
                await self._release()
        except asyncio.CancelledError:
            if self.engine.stopping and not self.lost:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._release())
            if not self.lost:
                raise
        except Exception as exc:
            log.exception("execution %s: engine error", self.execution_id)
            with contextlib.suppress(Exception):
                await self._finish(
                    "failed",
                    f"internal engine error: {type(exc).__name__}: {exc}",
                    {"code": "engine_error", "message": str(exc)},
                )
        finally:
            status = self.final_status or "handed_over"
            FLOW_EXECUTION_DURATION.labels(status).observe(time.perf_counter() - started)
            if self.final_status is not None:
                FLOW_EXECUTIONS.labels(status).inc()
            await self._stop_nodes()
            self.engine._forget(self)
            self.engine.hub.publish(self.execution_id, finished=True)

    async def _load(self) -> ExecutionRow | None:
        async with self.engine.db.session() as s:
            row = await s.get(ExecutionRow, self.execution_id)
            if row is None:
                return None
            stmt = select(NodeRunRow).where(NODES.c.execution_id == self.execution_id)
            nodes = (await s.execute(stmt)).scalars().all()
        for n in nodes:
            self.states[n.node_id] = NodeState(
                node_id=n.node_id,
                kind=n.kind,
                status=n.status,
                attempts=n.attempts,
                output=n.output_data,
                parent_id=n.parent_id,
                external_ref=n.external_ref,
                attempt_log=list(n.attempt_log or []),
                started_at=n.started_at,
                interrupted=n.status == "running",
            )
        return row

    async def _run(self) -> None:
        row = await self._load()
        if row is None or row.lease_owner != self.engine.owner or row.lease_token != self.token:
            return
        if row.status in TERMINAL_EXECUTION:
            await self._release()
            return
        self.flow = await self.engine.flows.definition(row.flow_id, row.flow_version)
        self.input = dict(row.input_data or {})
        self.owner = row.owner
        self.deadline = row.deadline_at
        if row.cancel_requested:
            self.cancel_event.set()
        exec_values: dict[str, Any] = {}
        if row.status == "pending":
            exec_values = {"status": "running", "started_at": utcnow()}
        else:
            exec_values = {"resumes": row.resumes + 1}
            self.engine.counters["resumed"] += 1
            log.info("execution %s: resuming", self.execution_id)
        attributes = {"portside.flow.id": row.flow_id, "portside.flow.execution_id": self.execution_id}
        with tracing.span(f"flow.execution {row.flow_id}", attributes, parent=row.meta or {}):
            await self._loop(exec_values)

    async def _loop(self, exec_values: dict[str, Any]) -> None:
        flow = self.flow
        assert flow is not None
        cancel_wait = asyncio.ensure_future(self.cancel_event.wait())
        carried: list[tuple[str, dict[str, Any]]] = []  # completions, written with the next launches
        try:
            while True:
                ops, carried = carried, []
                if self.cancel_event.is_set():
                    await self._finish("cancelled", "cancelled by request", None, ops, exec_values)
                    return
                if self.deadline is not None and utcnow() >= self.deadline:
                    error = {"code": "execution_timeout", "message": "the execution's deadline passed"}
                    await self._finish("failed", "execution timed out", error, ops, exec_values)
                    return
                launches: list[tuple[NodeSpec, Any]] = []
                failure = self._schedule(flow, ops, launches)
                if failure is not None:
                    await self._fail(failure[0], failure[1], ops, exec_values)
                    return
                if not self._node_tasks and not launches:
                    await self._complete(flow, ops, exec_values)
                    return
                if ops or exec_values:
                    await self._write(ops, exec_values)
                    exec_values = {}
                for node, node_input in launches:
                    task = asyncio.create_task(self._run_node(node, node_input))
                    self._node_tasks[task] = node.id
                timeout = None
                if self.deadline is not None:
                    timeout = max(0.0, (self.deadline - utcnow()).total_seconds())
                done, _ = await asyncio.wait(
                    [*self._node_tasks, cancel_wait], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                failed: tuple[str, NodeError] | None = None
                for finished in done:
                    if finished is cancel_wait:
                        continue
                    node_task: asyncio.Task[Outcome] = finished  # type: ignore[assignment]
                    node_id = self._node_tasks.pop(node_task)
                    outcome = node_task.result()
                    state = self.states[node_id]
                    now = utcnow()
                    duration = self._duration(state, now)
                    if outcome.ok:
                        state.status, state.output = "completed", outcome.output
                        carried.append(
                            (
                                node_id,
                                {
                                    "status": "completed",
                                    "output_data": outcome.output,
                                    "completed_at": now,
                                    "duration_ms": duration,
                                    "attempt_log": state.attempt_log,
                                },
                            )
                        )
                    else:
                        assert outcome.error is not None
                        state.status = "failed"
                        carried.append((node_id, self._failed_values(state, outcome.error, now, duration)))
                        failed = failed or (node_id, outcome.error)
                if failed is not None:
                    await self._fail(failed[0], failed[1], carried, {})
                    return
        finally:
            cancel_wait.cancel()

    def _duration(self, state: NodeState, now: datetime) -> float | None:
        if state.started_at is None:
            return None
        return round((now - state.started_at).total_seconds() * 1000, 3)

    def _failed_values(
        self, state: NodeState, error: NodeError, now: datetime, duration: float | None
    ) -> dict[str, Any]:
        state.attempt_log.append(self._log_entry(state.attempts, error, now))
        return {
            "status": "failed",
            "error_message": error.message,
            "error": error.as_dict(),
            "completed_at": now,
            "duration_ms": duration,
            "attempt_log": state.attempt_log,
        }

    @staticmethod
    def _log_entry(attempt: int, error: NodeError, at: datetime, retry_in: float | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {"attempt": attempt, "code": error.code, "error": error.message, "at": isoformat(at)}
        if retry_in is not None:
            entry["retry_in_seconds"] = round(retry_in, 3)
        return entry

    # ------------------------------------------------------------------ scheduling

    def scope(self) -> dict[str, Any]:
        nodes = {
            s.node_id: {"output": s.output, "status": s.status} for s in self.states.values() if s.parent_id is None
        }
        return {"input": self.input, "nodes": nodes}

    def node_input(self, node: NodeSpec, scope: Mapping[str, Any]) -> Any:
        """AI Spine semantics: the execution input updated with each dependency's output."""
        if node.input is not None:
            return render(node.input, scope)
        merged = dict(self.input)
        for dep in node.depends_on:
            state = self.states.get(dep)
            if state is None or state.status != "completed":
                continue
            if isinstance(state.output, dict):
                merged.update(state.output)
            elif state.output is not None:
                merged[dep] = state.output
        return merged

    def _schedule(
        self,
        flow: FlowDefinition,
        ops: list[tuple[str, dict[str, Any]]],
        launches: list[tuple[NodeSpec, Any]],
    ) -> tuple[str, NodeError] | None:
        """Decide what starts now: skip, launch or fail nodes whose dependencies are done."""
        running = set(self._node_tasks.values())
        scope: dict[str, Any] | None = None
        progressed = True
        while progressed:
            progressed = False
            for node in flow.nodes:
                state = self.states[node.id]
                if state.status == "running" and state.interrupted and node.id not in running:
                    state.interrupted = False
                    policy = retry_policy(flow, node)
                    if state.attempts >= policy.max_attempts + _EXTRA_RESUMES:
                        error = NodeError(
                            f"node '{node.id}' was interrupted {state.attempts} times (engine restarts)",
                            code="interrupted",
                        )
                        now = utcnow()
                        state.status = "failed"
                        ops.append((node.id, self._failed_values(state, error, now, self._duration(state, now))))
                        return node.id, error
                    state.attempt_log.append(
                        {
                            "attempt": state.attempts,
                            "code": "interrupted",
                            "error": "engine stopped",
                            "at": isoformat(utcnow()),
                        }
                    )
                    state.attempts += 1
                    scope = scope or self.scope()
                    try:
                        node_input = self.node_input(node, scope)
                    except ExpressionError as exc:
                        return node.id, self._input_failure(state, exc, ops)
                    ops.append((node.id, {"attempts": state.attempts, "attempt_log": state.attempt_log}))
                    launches.append((node, node_input))
                    running.add(node.id)
                    continue
                if state.status != "pending":
                    continue
                deps = [self.states[d].status for d in node.depends_on]
                if any(d not in ("completed", "skipped") for d in deps):
                    continue
                if len(running) >= flow.max_parallel:
                    continue
                now = utcnow()
                if deps and all(d == "skipped" for d in deps):
                    state.status = "skipped"
                    ops.append((node.id, {"status": "skipped", "completed_at": now}))
                    progressed, scope = True, None
                    continue
                scope = scope or self.scope()
                if node.when:
                    try:
                        go = bool(evaluate(node.when, scope))
                    except ExpressionError as exc:
                        return node.id, self._input_failure(state, exc, ops, "when")
                    if not go:
                        state.status = "skipped"
                        ops.append((node.id, {"status": "skipped", "completed_at": now}))
                        progressed, scope = True, None
                        continue
                try:
                    node_input = self.node_input(node, scope)
                except ExpressionError as exc:
                    return node.id, self._input_failure(state, exc, ops)
                state.status = "running"
                state.attempts += 1
                state.started_at = now
                ops.append(
                    (
                        node.id,
                        {"status": "running", "attempts": state.attempts, "started_at": now, "input_data": node_input},
                    )
                )
                launches.append((node, node_input))
                running.add(node.id)
        return None

    def _input_failure(
        self, state: NodeState, exc: ExpressionError, ops: list[tuple[str, dict[str, Any]]], what: str = "input"
    ) -> NodeError:
        error = NodeError(f"node '{state.node_id}' {what}: {exc}", code="expression_error")
        now = utcnow()
        state.status = "failed"
        ops.append((state.node_id, self._failed_values(state, error, now, None)))
        return error

    # ------------------------------------------------------------------ endings

    async def _complete(
        self, flow: FlowDefinition, ops: list[tuple[str, dict[str, Any]]], exec_values: dict[str, Any]
    ) -> None:
        output = {nid: self.states[nid].output for nid in flow.outputs() if self.states[nid].status == "completed"}
        self.final_status = "completed"
        await self._write(
            ops,
            {
                **exec_values,
                "status": "completed",
                "output_data": output,
                "completed_at": utcnow(),
                **self._release_values(),
            },
        )

    async def _fail(
        self, node_id: str, error: NodeError, ops: list[tuple[str, dict[str, Any]]], exec_values: dict[str, Any]
    ) -> None:
        await self._stop_nodes()
        message = f"node '{node_id}' failed: {error.message}"
        self.final_status = "failed"
        await self._write(
            ops,
            {
                **exec_values,
                "status": "failed",
                "error_message": message,
                "error": {**error.as_dict(), "node_id": node_id},
                "completed_at": utcnow(),
                **self._release_values(),
            },
            sweep={"status": "cancelled", "completed_at": utcnow()},
        )

    async def _finish(
        self,
        status: str,
        message: str,
        error: dict[str, Any] | None,
        ops: list[tuple[str, dict[str, Any]]] | None = None,
        exec_values: dict[str, Any] | None = None,
    ) -> None:
        await self._stop_nodes()
        self.final_status = status
        await self._write(
            ops,
            {
                **(exec_values or {}),
                "status": status,
                "error_message": message,
                "error": error,
                "completed_at": utcnow(),
                **self._release_values(),
            },
            sweep={"status": "cancelled", "completed_at": utcnow()},
        )

    async def _stop_nodes(self) -> None:
        tasks = list(self._node_tasks)
        self._node_tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    # ------------------------------------------------------------------ nodes

    async def _run_node(self, node: NodeSpec, node_input: Any) -> Outcome:
        if node.type == "map":
            return await self._run_map(node, node_input)
        return await self._attempts(node.id, node, node_input, self.scope(), self.states[node.id])

    async def _set_ref(self, node_id: str, ref: str | None) -> None:
        self.states[node_id].external_ref = ref
        await self._write([(node_id, {"external_ref": ref})])

    async def _attempts(
        self, node_id: str, spec: _NodeFields, node_input: Any, scope: Mapping[str, Any], state: NodeState
    ) -> Outcome:
        """Run one node until it succeeds or its retry policy gives up."""
        flow = self.flow
        assert flow is not None
        executor = self.engine.executors.get(spec.type)
        if executor is None:
            reason = self.engine.executors.unavailable_reason(spec.type)
            return Outcome(False, error=NodeError(reason, code="executor_unavailable"))
        policy = retry_policy(flow, spec)
        explicit_retry = spec.retry is not None or (flow.defaults is not None and flow.defaults.retry is not None)
        timeout = node_timeout(flow, spec)

        async def set_ref(ref: str | None) -> None:
            await self._set_ref(node_id, ref)

        while True:
            call = NodeCall(
                execution_id=self.execution_id,
                flow_id=flow.flow_id,
                node_id=node_id,
                spec=spec,
                input=node_input,
                scope=scope,
                attempt=state.attempts,
                timeout=timeout,
                owner=self.owner,
                max_attempts=policy.max_attempts if explicit_retry else None,
                external_ref=state.external_ref,
                set_external_ref=set_ref,
                is_shutting_down=lambda: self.engine.stopping or self.lost,
                services=self.engine.services,
                http=self.engine.http,
            )
            error: NodeError
            began = time.perf_counter()
            outcome = "error"
            try:
                with tracing.span(
                    f"flow.node {node_id}",
                    {
                        "portside.flow.node_id": node_id,
                        "portside.flow.node_type": spec.type,
                        "portside.attempt": state.attempts,
                    },
                ):
                    output = await asyncio.wait_for(executor(call), timeout + 5.0)
                outcome = "ok"
                if output_size(output) > self.engine.settings.max_output_bytes:
                    error = NodeError(
                        f"output larger than {self.engine.settings.max_output_bytes} bytes", code="output_too_large"
                    )
                else:
                    return Outcome(True, output=output)
            except NodeError as exc:
                error = exc
            except asyncio.TimeoutError:
                error = NodeError(f"node timed out after {timeout:g}s", retryable=True, code="timeout")
            except (LeaseLost, asyncio.CancelledError):
                raise
            except Exception as exc:
                log.exception("execution %s node %s: executor crashed", self.execution_id, node_id)
                error = NodeError(f"{type(exc).__name__}: {exc}", code="executor_error")
            finally:
                FLOW_NODE_DURATION.labels(spec.type, outcome).observe(time.perf_counter() - began)
            if not error.retryable or state.attempts >= policy.max_attempts:
                return Outcome(False, error=error)
            delay = policy.delay(state.attempts)
            state.attempt_log.append(self._log_entry(state.attempts, error, utcnow(), delay))
            state.external_ref = None
            await self._write([(node_id, {"attempt_log": state.attempt_log, "external_ref": None})])
            await asyncio.sleep(delay)
            state.attempts += 1
            await self._write([(node_id, {"attempts": state.attempts})])

    async def _run_map(self, node: NodeSpec, node_input: Any) -> Outcome:
        spec = node.map
        assert spec is not None
        scope = {**self.scope(), "input": self.input}
        try:
            items = evaluate(spec.items, scope)
        except ExpressionError as exc:
            return Outcome(False, error=NodeError(f"map items: {exc}", code="expression_error"))
        if not isinstance(items, list):
            return Outcome(
                False, error=NodeError(f"map items must be a list, got {type(items).__name__}", code="map_items")
            )
        if len(items) > spec.max_items:
            return Outcome(
                False, error=NodeError(f"map has {len(items)} items; the limit is {spec.max_items}", code="map_items")
            )
        inner = spec.node
        ids = [f"{node.id}[{i}]" for i in range(len(items))]
        missing = [cid for cid in ids if cid not in self.states]
        if missing:
            rows = []
            for cid in missing:
                self.states[cid] = NodeState(
                    node_id=cid, kind=inner.type, status="pending", attempts=0, parent_id=node.id
                )
                rows.append(
                    {
                        "execution_id": self.execution_id,
                        "node_id": cid,
                        "parent_id": node.id,
                        "kind": inner.type,
                        "status": "pending",
                        "attempts": 0,
                        "attempt_log": [],
                    }
                )
            await self._write(inserts=rows)
        gate = asyncio.Semaphore(spec.concurrency)

        async def one(index: int, item: Any) -> Any:
            cid = ids[index]
            state = self.states[cid]
            if state.status == "completed":
                return state.output
            async with gate:
                child_scope = {**scope, "item": item, "index": index}
                if inner.input is not None:
                    child_input = render(inner.input, child_scope)
                else:
                    base = dict(node_input) if isinstance(node_input, dict) else {"input": node_input}
                    child_input = {**base, "item": item, "index": index}
                now = utcnow()
                if state.status == "running":  # interrupted earlier
                    state.attempt_log.append(
                        {
                            "attempt": state.attempts,
                            "code": "interrupted",
                            "error": "engine stopped",
                            "at": isoformat(now),
                        }
                    )
                state.status = "running"
                state.attempts += 1
                state.started_at = state.started_at or now
                await self._write(
                    [
                        (
                            cid,
                            {
                                "status": "running",
                                "attempts": state.attempts,
                                "started_at": state.started_at,
                                "input_data": child_input,
                                "attempt_log": state.attempt_log,
                            },
                        )
                    ]
                )
                outcome = await self._attempts(cid, inner, child_input, child_scope, state)
                done = utcnow()
                duration = self._duration(state, done)
                if outcome.ok:
                    state.status, state.output = "completed", outcome.output
                    await self._write(
                        [
                            (
                                cid,
                                {
                                    "status": "completed",
                                    "output_data": outcome.output,
                                    "completed_at": done,
                                    "duration_ms": duration,
                                },
                            )
                        ]
                    )
                    return outcome.output
                assert outcome.error is not None
                state.status = "failed"
                await self._write([(cid, self._failed_values(state, outcome.error, done, duration))])
                raise _ItemFailed(cid, outcome.error)

        tasks = [asyncio.create_task(one(i, item)) for i, item in enumerate(items)]
        try:
            results = await asyncio.gather(*tasks)
        except _ItemFailed as exc:
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks, timeout=10)
            return Outcome(
                False,
                error=NodeError(
                    f"item {exc.node_id} failed: {exc.error.message}",
                    code="map_item_failed",
                    details={"item": exc.node_id, "error": exc.error.as_dict()},
                ),
            )
        finally:
            for t in tasks:
                t.cancel()
        return Outcome(True, output={"results": list(results), "count": len(results)})


class _ItemFailed(Exception):
    def __init__(self, node_id: str, error: NodeError) -> None:
        super().__init__(node_id)
        self.node_id = node_id
        self.error = error
