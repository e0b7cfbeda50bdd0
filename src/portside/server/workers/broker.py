"""The lease broker: worker streams, registration, dispatch, results, heartbeats and the reaper.

The store is the source of truth. Each replica dispatches only to the worker streams connected to
it: a dispatch round claims queued tasks for the free slots of its sessions in one transaction
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the in-process write lock on SQLite), records the
leases, commits, and only then queues lease frames on the streams. Acks and nacks are group
committed. Replicas wake each other with the notifier and also poll, so a lost wake-up only costs
a poll period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from portside.server import tracing
from portside.server.clock import as_utc, isoformat, utcnow
from portside.server.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, Unavailable
from portside.server.ids import new_id
from portside.server.metrics.instruments import TASK_DISPATCH_LATENCY, TASK_RESULTS
from portside.server.store import Database
from portside.server.workers.batch import GroupCommit, Op
from portside.server.workers.capabilities import (
    CapabilitySpec,
    check_worker_id,
    parse_capabilities,
    parse_capability,
    schema_errors,
    spec_from_stored,
)
from portside.server.workers.config import PROTOCOL_VERSION, SUPPORTED_MAJOR, WorkersConfig
from portside.server.workers.domain import (
    CANCELLED,
    FAILED,
    NACK_KINDS,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    CancelFrame,
    DisconnectFrame,
    LeaseFrame,
    ProgressEntry,
    RegisteredFrame,
    RegisterResult,
    ResultOutcome,
)
from portside.server.workers.notify import Notifier
from portside.server.workers.registry import CapabilityRegistry
from portside.server.workers.rows import LEASES, PROGRESS, TASKS, WORKERS
from portside.server.workers.sessions import Session
from portside.server.workers.store import Exec, WorkersStore
from portside.server.workers.tokens import WorkerCaller

log = logging.getLogger("portside.workers.broker")

ACTIVE, ACKED, NACKED, EXPIRED, LEASE_CANCELLED, RELEASED = (
    "active",
    "acked",
    "nacked",
    "expired",
    "cancelled",
    "released",
)
_RECONCILE_EVERY_S = 5.0
#: What an ack/nack needs to read (not the task's input).
_RESULT_COLUMNS = [
    TASKS.c[name]
    for name in (
        "id",
        "capability",
        "status",
        "output",
        "error",
        "attempt",
        "max_attempts",
        "available_at",
        "lease_id",
        "worker_id",
        "lease_expires_at",
        "cancel_requested",
        "finished_at",
    )
]
_TRACED_RESULT_COLUMNS = [*_RESULT_COLUMNS, TASKS.c.metadata]  # when tracing: the submitter's trace context
_LEASE_COLUMNS = [LEASES.c[name] for name in ("id", "task_id", "worker_id", "key_id", "state", "outcome")]


class _Mutex:
    """An asyncio mutex with a non-blocking ``try_acquire`` (single event loop)."""

    def __init__(self) -> None:
        self._held = False
        self._free = asyncio.Event()
        self._free.set()

    def try_acquire(self) -> bool:
        if self._held:
            return False
        self._held = True
        self._free.clear()
        return True

    async def __aenter__(self) -> None:
        while not self.try_acquire():
            await self._free.wait()

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        self._held = False
        self._free.set()


@dataclass
class Claim:
    """What one dispatch step leased, inside a transaction not yet committed."""

    offers: list[tuple[Session, LeaseFrame, str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    saturated: bool = False
    more: set[str] = field(default_factory=set)
    drained: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class ResultRequest:
    """An ack (``ok``) or a nack of one lease."""

    lease_id: str
    caller: WorkerCaller
    worker_id: str | None
    ok: bool
    output: Any = None
    kind: str | None = None
    reason: str = ""
    code: str | None = None
    details: Any = None
    traceparent: str | None = None  # the worker's handler span, parent of the result's span


def negotiate(version: Any) -> str:
    """Accept any ``1.x.y`` client; return the server's protocol version."""
    if not isinstance(version, str) or not version:
        raise InvalidInput("protocolVersion is required", code="protocol_version_unsupported")
    major = version.split(".", 1)[0].lstrip("v")
    if not major.isdigit() or int(major) != SUPPORTED_MAJOR:
        raise InvalidInput(
            f"protocol version {version} is not supported; this gateway speaks {PROTOCOL_VERSION}",
            code="protocol_version_unsupported",
            details={"supported": [f"{SUPPORTED_MAJOR}.x"], "server": PROTOCOL_VERSION, "client": version},
        )
    return PROTOCOL_VERSION


def _lease_error(lease_id: str, state: str) -> Conflict:
    code = {EXPIRED: "lease_expired", LEASE_CANCELLED: "lease_cancelled"}.get(state, "lease_ended")
    return Conflict(f"lease {lease_id} is no longer active ({state})", code=code, details={"state": state})


class Broker:
    """Worker-facing half of the workers service."""

    def __init__(
        self,
        db: Database,
        config: WorkersConfig,
        notifier: Notifier,
        capabilities: CapabilityRegistry,
        store: WorkersStore,
    ) -> None:
        self.db = db
        self.store = store
        self.config = config
        self.notifier = notifier
        self.capabilities = capabilities
        self.sessions: dict[str, Session] = {}
        self.commit = GroupCommit(store, max_batch=config.max_batch)
        self.commit.register("result", self._apply_results)
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._closing = False
        self._last_reconcile = 0.0
        self._dispatch_lock = _Mutex()
        #: Capabilities that may have queued tasks; freed slots only trigger a round for these.
        self._backlog: set[str] = set()
        self._backlog_all = True
        notifier.subscribe(self._on_event)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._closing = False
        self.commit.max_batch = self.config.max_batch
        self.commit.start()
        self._loops = [
            asyncio.create_task(self._dispatch_loop(), name="workers-dispatch"),
            asyncio.create_task(self._reaper_loop(), name="workers-reaper"),
        ]

    async def close_streams(self, reason: str = "server shutting down") -> None:
        """End every local stream (the workers reconnect, possibly to another replica)."""
        self._closing = True
        for session in list(self.sessions.values()):
            session.send(DisconnectFrame(reason=reason, code="shutdown", reconnectable=True))
            session.send(None)
        for _ in range(50):
            if not self.sessions:
                break
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        await self.close_streams()
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops = []
        await self.commit.stop()

    def wake(self, capabilities: Iterable[str] | None = None) -> None:
        """Ask the dispatcher for a round now (``capabilities``: these have new queued tasks)."""
        if capabilities is None:
            self._backlog_all = True
        else:
            self._backlog.update(capabilities)
        self._wake.set()

    # -- notifications ------------------------------------------------------------------------

    def _on_event(self, event: str, payload: dict[str, Any]) -> None:
        if event == "ready":
            caps = payload.get("c")
            self.wake(caps if isinstance(caps, list) else None)
        elif event == "ended":
            self._end_local(payload.get("w", {}))
        elif event == "cancel":
            for lease_id, worker_id, reason in payload.get("l", []):
                self._cancel_local(lease_id, worker_id, reason)
        elif event == "worker":
            session = self.sessions.get(str(payload.get("id")))
            if session is not None and not session.closed:
                asyncio.get_running_loop().create_task(self._reload(session))
        elif event == "stream":
            session = self.sessions.get(str(payload.get("id")))
            if session is not None and session.stream_id != payload.get("s"):
                self._drop(session, "superseded by a newer connection of the same worker")
        elif event == "stale":
            for worker_id in payload.get("w", []):
                self._pause(worker_id)
        elif event == "alive":
            self._resume(str(payload.get("id")))
        elif event == "resync":
            self._last_reconcile = 0.0
            self.wake()

    def _end_local(self, by_worker: dict[str, list[str]]) -> dict[str, list[str]]:
        """End leases held by local sessions; returns those held elsewhere."""
        remote: dict[str, list[str]] = {}
        freed: set[str] = set()
        for worker_id, lease_ids in by_worker.items():
            session = self.sessions.get(worker_id)
            for lease_id in lease_ids:
                ctype = session.lease_cap.get(lease_id) if session is not None else None
                if session is not None and session.end_lease(lease_id):
                    freed.add(ctype or "")
                else:
                    remote.setdefault(worker_id, []).append(lease_id)
        if freed and (self._backlog_all or freed & self._backlog):
            self._wake.set()
        return remote

    def _pause(self, worker_id: str) -> bool:
        session = self.sessions.get(worker_id)
        if session is None:
            return False
        if not session.paused:
            log.warning("worker %s let a lease expire; no new leases until it heartbeats", worker_id)
            session.paused = True
            session.paused_at = utcnow()
        return True

    def _resume(self, worker_id: str) -> bool:
        session = self.sessions.get(worker_id)
        if session is None:
            return False
        if session.paused:
            session.paused = False
            self._wake.set()
        return True

    def _cancel_local(self, lease_id: str, worker_id: str, reason: str) -> bool:
        session = self.sessions.get(worker_id)
        if session is None:
            return False
        held = session.end_lease(lease_id)
        session.send(CancelFrame(lease_id=lease_id, reason=reason, at=utcnow()))
        self._wake.set()
        return held

    def send_cancels(self, cancels: Iterable[tuple[str, str, str]]) -> None:
        """Tell the holders of these ``(lease_id, worker_id, reason)`` to stop; local or remote."""
        remote = [[lid, wid, why] for lid, wid, why in cancels if not self._cancel_local(lid, wid, why)]
        if remote:
            self.notifier.publish("cancel", {"l": remote})

    def end_leases(self, by_worker: dict[str, list[str]]) -> None:
        """Free the slots of ended leases, here or on the replica holding the stream."""
        remote = self._end_local(by_worker)
        if remote:
            self.notifier.publish("ended", {"w": remote})

    def _drop(self, session: Session, reason: str, *, code: str = "superseded", reconnectable: bool = False) -> None:
        session.send(DisconnectFrame(reason=reason, code=code, reconnectable=reconnectable))
        session.send(None)
        if self.sessions.get(session.worker_id) is session:
            del self.sessions[session.worker_id]

    # -- caller checks ------------------------------------------------------------------------

    def check_worker(self, caller: WorkerCaller, worker_id: str) -> None:
        """403 unless ``caller`` may act as ``worker_id`` (worker scope, token binding)."""
        self._check_caller(caller, worker_id)

    @staticmethod
    def _check_caller(caller: WorkerCaller, worker_id: str) -> None:
        caller.principal.require("worker")
        check_worker_id(worker_id)
        if caller.bound_worker_id is not None and caller.bound_worker_id != worker_id:
            raise Forbidden(
                f"this token is bound to worker {caller.bound_worker_id}, not {worker_id}",
                code="worker_mismatch",
            )

    @staticmethod
    def _check_owner(row: Any, caller: WorkerCaller) -> None:
        if row is not None and row["owner"] != caller.principal.owner and not caller.principal.has("admin"):
            raise Conflict(f"worker id {row['id']} is registered by another owner", code="worker_id_taken")

    @staticmethod
    async def _worker_row(x: Exec, worker_id: str, *, lock: bool = False) -> Any:
        query = select(WORKERS).where(WORKERS.c.id == worker_id)
        if lock:
            query = query.with_for_update()
        return (await x.execute(query)).mappings().first()

    # -- streams ------------------------------------------------------------------------------

    async def open_stream(self, caller: WorkerCaller, worker_id: str, kind: str) -> Session:
        """Attach a new event stream for ``worker_id`` on this replica."""
        self._check_caller(caller, worker_id)
        if self._closing:
            raise Unavailable("server is shutting down; reconnect shortly", code="shutting_down")
        now = utcnow()
        async with self.store.tx() as s:
            row = await self._worker_row(s, worker_id)
            self._check_owner(row, caller)
            if row is not None:
                await s.execute(
                    update(WORKERS)
                    .where(WORKERS.c.id == worker_id)
                    .values(status="connected", replica_id=self.config.replica_id, connected_at=now, updated_at=now)
                )
        old = self.sessions.get(worker_id)
        if old is not None:
            self._drop(old, "superseded by a newer connection of the same worker")
        session = Session(worker_id, kind, caller)
        self.sessions[worker_id] = session
        self.notifier.publish("stream", {"id": worker_id, "s": session.stream_id})
        return session

    async def close_stream(self, session: Session) -> None:
        """Forget a stream that ended; leases it never received go back to the queue."""
        if session.finalized:
            return
        session.finalized = True
        session.closed = True
        if self.sessions.get(session.worker_id) is session:
            del self.sessions[session.worker_id]
        undelivered = session.undelivered_leases()
        if undelivered:
            await self.release(undelivered, reason="stream closed before delivery")
        if session.worker_id in self.sessions:
            return  # it already reconnected here: the new stream is the one that counts
        with contextlib.suppress(Exception):
            async with self.store.tx() as s:
                await s.execute(
                    update(WORKERS)
                    .where(WORKERS.c.id == session.worker_id, WORKERS.c.replica_id == self.config.replica_id)
                    .values(status="disconnected", disconnected_at=utcnow(), updated_at=utcnow())
                )

    # -- registration -------------------------------------------------------------------------

    async def register(
        self,
        caller: WorkerCaller,
        worker_id: str,
        *,
        kind: str,
        protocol_version: Any,
        capabilities: Any,
        labels: dict[str, Any] | None = None,
    ) -> RegisterResult:
        """Record a worker's capabilities; its stream (here or on another replica) starts getting leases."""
        self._check_caller(caller, worker_id)
        try:
            negotiated = negotiate(protocol_version)
        except InvalidInput as exc:
            local = self.sessions.get(worker_id)
            if local is not None:  # the SDK only retries register after a reconnect
                self._drop(local, exc.message, code="protocol_version_unsupported")
            raise
        specs = parse_capabilities(capabilities)
        self._check_scopes(caller, specs)
        now = utcnow()
        session_id = new_id("nss")
        changed: list[str] = []
        for attempt in range(3):
            try:
                async with self.store.tx() as s:
                    changed = await self._store_registration(
                        s, caller, worker_id, kind, str(protocol_version)[:32], specs, labels, session_id, now
                    )
                break
            except IntegrityError:  # two replicas registered the same new worker at once
                if attempt == 2:
                    raise
        for ctype in changed:
            self.capabilities.invalidate(ctype)
        local = self.sessions.get(worker_id)
        if local is not None and not local.closed:
            await self._adopt(local, session_id, specs, now)
        else:
            self.notifier.publish("worker", {"id": worker_id})
        return RegisterResult(
            worker_id=worker_id,
            session_id=session_id,
            capabilities=specs,
            accepted_at=now,
            protocol_version=negotiated,
            lease_ttl_ms=int(self.config.lease_ttl_s * 1000),
            heartbeat_interval_ms=int(self.config.heartbeat_interval_s * 1000),
        )

    async def _store_registration(
        self,
        s: Exec,
        caller: WorkerCaller,
        worker_id: str,
        kind: str,
        protocol_version: str,
        specs: list[CapabilitySpec],
        labels: dict[str, Any] | None,
        session_id: str,
        now: datetime,
    ) -> list[str]:
        row = await self._worker_row(s, worker_id, lock=True)
        self._check_owner(row, caller)
        values: dict[str, Any] = {
            "owner": caller.principal.owner,
            "key_id": caller.principal.key_id,
            "tenant": None if caller.principal.has("admin") else caller.principal.owner,
            "kind": kind,
            "protocol_version": protocol_version,
            "capabilities": [spec.stored() for spec in specs],
            "labels": dict(labels or {}),
            "session_id": session_id,
            "registered_at": now,
            "updated_at": now,
        }
        local = self.sessions.get(worker_id)
        if local is not None and not local.closed:
            values.update(status="connected", replica_id=self.config.replica_id, connected_at=now)
        if row is None:
            values.setdefault("status", "registered")
            await s.execute(insert(WORKERS).values(id=worker_id, created_at=now, **values))
        else:
            await s.execute(update(WORKERS).where(WORKERS.c.id == worker_id).values(**values))
        changed = []
        for spec in specs:
            if await self.capabilities.upsert_from_worker(s, caller.principal, spec):
                changed.append(spec.type)
        return changed

    @staticmethod
    def _check_scopes(caller: WorkerCaller, specs: list[CapabilitySpec]) -> None:
        for spec in specs:
            if spec.scope is not None and spec.scope != caller.principal.owner and not caller.principal.has("admin"):
                raise Forbidden(
                    f"capability {spec.type}: only {spec.scope} or an admin may serve tasks on behalf of {spec.scope}",
                    code="scope_not_allowed",
                    details={"capability": spec.type, "on_behalf_of": spec.scope},
                )

    async def update_capability(self, caller: WorkerCaller, worker_id: str, raw: Any) -> CapabilitySpec:
        """Add or change one capability of a registered worker (e.g. its concurrency)."""
        self._check_caller(caller, worker_id)
        spec = parse_capability(raw)
        self._check_scopes(caller, [spec])
        async with self.store.tx() as s:
            row = await self._worker_row(s, worker_id, lock=True)
            if row is None or row["session_id"] is None:
                raise NotFound(f"worker {worker_id} is not registered", code="worker_not_registered")
            self._check_owner(row, caller)
            caps = [c for c in row["capabilities"] if c.get("type") != spec.type]
            caps.append(spec.stored())
            await s.execute(
                update(WORKERS).where(WORKERS.c.id == worker_id).values(capabilities=caps, updated_at=utcnow())
            )
            session_id = row["session_id"]
            specs = [spec_from_stored(c) for c in caps]
        local = self.sessions.get(worker_id)
        if local is not None and not local.closed and local.registered:
            local.apply(session_id, specs)
            self._wake.set()
        else:
            self.notifier.publish("worker", {"id": worker_id})
        return spec

    async def _adopt(self, session: Session, session_id: str, specs: list[CapabilitySpec], at: datetime) -> None:
        async with self.store.read() as s:
            held = (
                await s.execute(
                    select(LEASES.c.id, LEASES.c.capability).where(
                        LEASES.c.worker_id == session.worker_id, LEASES.c.state == ACTIVE
                    )
                )
            ).all()
        session.apply(session_id, specs)
        session.paused = False
        session.last_seen = time.monotonic()
        for row in held:
            if row[0] not in session.lease_cap:
                session.add_lease(row[0], row[1])
        session.send(RegisteredFrame(session_id=session_id, capabilities=specs, accepted_at=at))
        self._wake.set()

    async def _reload(self, session: Session) -> None:
        """Adopt a registration made through another replica."""
        try:
            async with self.store.read() as s:
                row = await self._worker_row(s, session.worker_id)
            if row is None or row["session_id"] is None or row["session_id"] == session.session_id or session.closed:
                return
            specs = [spec_from_stored(c) for c in row["capabilities"]]
            await self._adopt(session, row["session_id"], specs, row["registered_at"] or utcnow())
        except Exception:  # pragma: no cover - the next register or poll fixes it
            log.exception("could not reload worker %s", session.worker_id)

    # -- heartbeats and progress -------------------------------------------------------------

    async def heartbeat(self, caller: WorkerCaller, worker_id: str, lease_ids: list[str]) -> dict[str, Any]:
        """Mark the worker alive and renew the leases it still runs."""
        self._check_caller(caller, worker_id)
        now = utcnow()
        wanted = sorted({lid for lid in lease_ids if isinstance(lid, str)})[:10_000]
        renewed: list[str] = []
        async with self.store.tx() as s:
            row = await self._worker_row(s, worker_id)
            if row is None or row["session_id"] is None:
                raise NotFound(f"worker {worker_id} is not registered", code="worker_not_registered")
            self._check_owner(row, caller)
            await s.execute(update(WORKERS).where(WORKERS.c.id == worker_id).values(last_heartbeat_at=now))
            if wanted:
                rows = (
                    await s.execute(
                        select(LEASES.c.id, LEASES.c.ttl_ms, LEASES.c.task_id).where(
                            LEASES.c.id.in_(wanted), LEASES.c.worker_id == worker_id, LEASES.c.state == ACTIVE
                        )
                    )
                ).all()
                if rows:
                    params = [
                        {"b_id": r.id, "b_task": r.task_id, "b_exp": now + timedelta(milliseconds=r.ttl_ms)}
                        for r in rows
                    ]
                    await s.execute(
                        update(LEASES).where(LEASES.c.id == bindparam("b_id")).values(expires_at=bindparam("b_exp")),
                        params,
                    )
                    await s.execute(
                        update(TASKS)
                        .where(TASKS.c.id == bindparam("b_task"), TASKS.c.lease_id == bindparam("b_id"))
                        .values(lease_expires_at=bindparam("b_exp")),
                        params,
                    )
                    renewed = [r.id for r in rows]
        local = self.sessions.get(worker_id)
        if local is not None:
            local.last_seen = time.monotonic()
        if not self._resume(worker_id):
            self.notifier.publish("alive", {"id": worker_id})
        ended = sorted(set(wanted) - set(renewed))
        return {"renewed": renewed, "ended": ended, "server_time": now}

    async def progress(
        self,
        caller: WorkerCaller,
        worker_id: str | None,
        lease_id: str,
        *,
        percent: float | None = None,
        message: str | None = None,
        data: Any = None,
    ) -> ProgressEntry:
        """Store a progress report of the lease holder; the submitter sees it on the task."""
        if percent is not None and not 0 <= percent <= 100:
            raise InvalidInput("percent must be between 0 and 100", code="invalid_progress")
        if message is not None and len(message) > 10_000:
            raise InvalidInput("message is longer than 10000 characters", code="invalid_progress")
        now = utcnow()
        async with self.store.tx() as s:
            lease = (await s.execute(select(LEASES).where(LEASES.c.id == lease_id))).mappings().first()
            if lease is None:
                raise NotFound(f"lease {lease_id} not found", code="lease_not_found")
            self._check_holder(lease, caller, worker_id)
            if lease["state"] != ACTIVE:
                raise _lease_error(lease_id, lease["state"])
            entry = {"percent": percent, "message": message, "data": data, "at": now}
            await s.execute(PROGRESS.insert().values(task_id=lease["task_id"], lease_id=lease_id, **entry))
            await s.execute(
                update(TASKS)
                .where(TASKS.c.id == lease["task_id"], TASKS.c.lease_id == lease_id)
                .values(
                    progress={"percent": percent, "message": message, "data": data, "at": isoformat(now)},
                    updated_at=now,
                )
            )
        self.notifier.publish("progress", {"ids": [lease["task_id"]]})
        return ProgressEntry(
            task_id=lease["task_id"], lease_id=lease_id, percent=percent, message=message, data=data, at=now
        )

    @staticmethod
    def _check_holder(lease: Any, caller: WorkerCaller, worker_id: str | None) -> None:
        claimed = {w for w in (worker_id, caller.bound_worker_id) if w}
        same_key = lease["key_id"] == caller.principal.key_id
        if claimed:
            ok = claimed == {lease["worker_id"]} and (same_key or caller.principal.has("admin"))
        else:
            ok = same_key
        if not ok:
            raise Conflict(
                f"lease {lease['id']} is not held by this worker",
                code="lease_not_held",
                details={"lease_id": lease["id"]},
            )

    # -- results ------------------------------------------------------------------------------

    async def result(self, request: ResultRequest) -> ResultOutcome:
        """Apply one ack/nack (group committed); raises its error."""
        if not request.ok and request.kind not in NACK_KINDS:
            raise InvalidInput(
                f"nack kind must be one of {', '.join(NACK_KINDS)}",
                code="invalid_nack_kind",
                details={"kind": request.kind},
            )
        outcome: ResultOutcome = await self.commit.run("result", request)
        return outcome

    async def results(self, requests: list[ResultRequest]) -> list[ResultOutcome]:
        """Apply many acks/nacks; errors are reported per item, never raised."""

        async def one(req: ResultRequest) -> ResultOutcome:
            try:
                return await self.result(req)
            except DomainError as exc:
                return ResultOutcome(lease_id=req.lease_id, accepted=False, error=exc)

        return list(await asyncio.gather(*(one(r) for r in requests)))

    async def _apply_results(self, s: Exec, ops: list[Op]) -> None:
        now = utcnow()
        lease_ids = sorted({op.payload.lease_id for op in ops})
        leases = {
            m["id"]: dict(m)
            for m in (
                await s.execute(
                    select(*_LEASE_COLUMNS).where(LEASES.c.id.in_(lease_ids)).order_by(LEASES.c.id).with_for_update()
                )
            ).mappings()
        }
        task_ids = sorted({lease["task_id"] for lease in leases.values()})
        tasks: dict[str, dict[str, Any]] = {}
        if task_ids:
            tasks = {
                m["id"]: dict(m)
                for m in (
                    await s.execute(
                        select(*(_TRACED_RESULT_COLUMNS if tracing.enabled() else _RESULT_COLUMNS))
                        .where(TASKS.c.id.in_(task_ids))
                        .order_by(TASKS.c.id)
                        .with_for_update()
                    )
                ).mappings()
            }
        lease_updates: dict[str, dict[str, Any]] = {}
        task_updates: dict[str, dict[str, Any]] = {}
        ended: dict[str, list[str]] = {}
        done: list[str] = []
        retry_delays: list[float] = []
        for op in ops:
            req: ResultRequest = op.payload
            lease = leases.get(req.lease_id)
            if lease is None:
                op.error = NotFound(f"lease {req.lease_id} not found", code="lease_not_found")
                continue
            try:
                self._check_holder(lease, req.caller, req.worker_id)
            except DomainError as exc:
                op.error = exc
                continue
            state = lease["state"]
            if state != ACTIVE:
                outcome = lease.get("outcome") or {}
                if req.ok and state == ACKED:
                    op.result = ResultOutcome(req.lease_id, True, lease["task_id"], None, duplicate=True)
                elif not req.ok and req.kind == "cancelled" and state in (LEASE_CANCELLED, EXPIRED, RELEASED):
                    op.result = ResultOutcome(req.lease_id, True, lease["task_id"], None, duplicate=True)
                elif not req.ok and state == NACKED and outcome.get("kind") == req.kind:
                    op.result = ResultOutcome(req.lease_id, True, lease["task_id"], None, duplicate=True)
                else:
                    op.error = _lease_error(req.lease_id, state)
                continue
            task = tasks.get(lease["task_id"])
            if task is None or task["lease_id"] != lease["id"] or task["status"] != RUNNING:
                lease["state"] = RELEASED
                lease_updates[lease["id"]] = {"b_id": lease["id"], "b_state": RELEASED, "b_out": {"lost": True}}
                ended.setdefault(lease["worker_id"], []).append(lease["id"])
                op.error = _lease_error(req.lease_id, RELEASED)
                continue
            new_state, outcome_doc = await self._decide(req, lease, task, now, retry_delays)
            lease["state"] = new_state
            lease["outcome"] = outcome_doc
            lease_updates[lease["id"]] = {"b_id": lease["id"], "b_state": new_state, "b_out": outcome_doc}
            task_updates[task["id"]] = task
            ended.setdefault(lease["worker_id"], []).append(lease["id"])
            if task["status"] in (SUCCEEDED, FAILED, CANCELLED):
                done.append(task["id"])
            if outcome_doc.get("error_status"):
                op.error = InvalidInput(
                    "output does not match the capability's output schema",
                    code="output_schema_mismatch",
                    details={"errors": outcome_doc.get("errors", [])},
                )
            else:
                op.result = ResultOutcome(req.lease_id, True, task["id"], task["status"])
            if tracing.enabled():
                _result_span(req, lease, task)
        if lease_updates:
            await s.execute(
                update(LEASES)
                .where(LEASES.c.id == bindparam("b_id"))
                .values(state=bindparam("b_state"), outcome=bindparam("b_out"), ended_at=now),
                [lease_updates[k] for k in sorted(lease_updates)],
            )
        if task_updates:
            await s.execute(
                update(TASKS)
                .where(TASKS.c.id == bindparam("b_id"))
                .values(
                    status=bindparam("b_status"),
                    output=bindparam("b_output"),
                    error=bindparam("b_error"),
                    finished_at=bindparam("b_finished"),
                    available_at=bindparam("b_avail"),
                    lease_id=bindparam("b_lease"),
                    worker_id=bindparam("b_worker"),
                    lease_expires_at=bindparam("b_lexp"),
                    updated_at=now,
                ),
                [
                    {
                        "b_id": t["id"],
                        "b_status": t["status"],
                        "b_output": t["output"],
                        "b_error": t["error"],
                        "b_finished": t["finished_at"],
                        "b_avail": t["available_at"],
                        "b_lease": t["lease_id"],
                        "b_worker": t["worker_id"],
                        "b_lexp": t["lease_expires_at"],
                    }
                    for _, t in sorted(task_updates.items())
                ],
            )
        requeued = [t["capability"] for t in task_updates.values() if t["status"] == QUEUED]
        if not ops:
            return
        remote, freed, claim = await self._refill(s, ended, ops[-1])

        statuses = [t["status"] for t in task_updates.values()]

        def after() -> None:
            for status in statuses:
                TASK_RESULTS.labels(status).inc()
            if remote:
                self.notifier.publish("ended", {"w": remote})
            if claim is not None:
                self.deliver(claim)
                if claim.saturated:
                    self._wake.set()
            elif freed and (self._backlog_all or freed & self._backlog):
                self._wake.set()
            if done:
                self.notifier.publish("done", {"ids": done})
            if requeued:
                self._requeued(requeued, retry_delays)

        ops[-1].after.append(after)

    async def _refill(
        self, s: Exec, ended: dict[str, list[str]], op: Op
    ) -> tuple[dict[str, list[str]], set[str], Claim | None]:
        """Inside the results transaction: free the ended leases' local slots and lease queued
        tasks to them at once ("ack and next"), saving a dispatch round per ack batch.

        Returns (leases held on other replicas, capabilities freed here, the claim or None).
        Undo hooks on ``op`` restore the slot counts if the transaction rolls back.
        """
        remote: dict[str, list[str]] = {}
        freed: set[str] = set()
        restore: list[tuple[Session, str, str]] = []
        for worker_id, lease_ids in ended.items():
            session = self.sessions.get(worker_id)
            for lease_id in lease_ids:
                ctype = session.lease_cap.get(lease_id) if session is not None else None
                if session is not None and ctype is not None and session.end_lease(lease_id):
                    freed.add(ctype)
                    restore.append((session, lease_id, ctype))
                else:
                    remote.setdefault(worker_id, []).append(lease_id)
        if restore:

            def undo_freed() -> None:
                for sess, lid, ctype in restore:
                    sess.add_lease(lid, ctype)

            op.undo.append(undo_freed)
        wanted = freed if self._backlog_all else freed & self._backlog
        if not wanted or not self.try_claim_lock():
            return remote, freed, None
        claim = Claim()
        try:
            await self.claim(s, self.local_demand(wanted), claim)
        except BaseException:
            self.abandon(claim)
            raise
        finally:
            self.release_claim_lock()
        op.undo.append(lambda: self.abandon(claim))
        return remote, freed, claim

    async def _decide(
        self,
        req: ResultRequest,
        lease: dict[str, Any],
        task: dict[str, Any],
        now: datetime,
        retry_delays: list[float],
    ) -> tuple[str, dict[str, Any]]:
        """Apply an ack/nack to ``task`` (mutated in place); returns the lease's new state and outcome."""
        if req.ok:
            cdef = await self.capabilities.get(task["capability"])
            errors = schema_errors(cdef.output_schema, req.output) if cdef is not None else []
            if errors:
                task.update(
                    status=FAILED,
                    finished_at=now,
                    error={
                        "code": "output_schema_mismatch",
                        "message": "output does not match the capability's output schema",
                        "details": {"errors": errors},
                        "attempt": task["attempt"],
                        "worker_id": lease["worker_id"],
                    },
                )
                return NACKED, {"kind": "schema-mismatch", "errors": errors, "error_status": 400}
            task.update(status=SUCCEEDED, output=req.output, error=None, finished_at=now)
            return ACKED, {"kind": "ack"}
        error = {
            "code": req.code or req.kind,
            "kind": req.kind,
            "message": req.reason or req.kind,
            "details": req.details,
            "attempt": task["attempt"],
            "worker_id": lease["worker_id"],
        }
        outcome = {"kind": req.kind, "reason": req.reason[:2000], "code": req.code}
        kind = req.kind
        if task["cancel_requested"]:
            task.update(status=CANCELLED, finished_at=task["finished_at"] or now)
            return NACKED, outcome
        if kind in ("terminal", "schema-mismatch"):
            if kind == "schema-mismatch":
                error["code"] = req.code or "schema_mismatch"
            task.update(status=FAILED, error=error, finished_at=now)
            return NACKED, outcome
        # retryable, or cancelled by the worker itself (shutdown): redeliver while attempts remain
        if task["attempt"] >= task["max_attempts"]:
            error["message"] = f"{error['message']} (gave up after {task['attempt']} attempts)"
            error["code"] = "max_attempts_exceeded"
            error["last_code"] = req.code or kind
            task.update(status=FAILED, error=error, finished_at=now)
            return NACKED, outcome
        delay = self.config.backoff(task["attempt"]) if kind == "retryable" else 0.0
        retry_delays.append(delay)
        task.update(
            status=QUEUED,
            error=error,
            available_at=now + timedelta(seconds=delay),
            lease_id=None,
            worker_id=None,
            lease_expires_at=None,
        )
        return NACKED, outcome

    def _requeued(self, capabilities: list[str], delays: Iterable[float]) -> None:
        self.notifier.publish("ready", {"c": sorted(set(capabilities))})
        loop = asyncio.get_running_loop()
        for delay in sorted(set(delays)):
            if delay > 0:
                loop.call_later(delay + 0.01, self._ready_later, sorted(set(capabilities)))

    def _ready_later(self, capabilities: list[str]) -> None:
        self.notifier.publish("ready", {"c": capabilities})

    async def release(self, lease_ids: list[str], *, reason: str) -> None:
        """Give leases back without charging an attempt (never delivered)."""
        now = utcnow()
        caps: list[str] = []
        ended: dict[str, list[str]] = {}
        async with self.store.tx() as s:
            leases = (
                await s.execute(
                    select(LEASES.c.id, LEASES.c.task_id, LEASES.c.worker_id)
                    .where(LEASES.c.id.in_(sorted(lease_ids)), LEASES.c.state == ACTIVE)
                    .order_by(LEASES.c.id)
                    .with_for_update()
                )
            ).all()
            if not leases:
                return
            await s.execute(
                update(LEASES)
                .where(LEASES.c.id.in_([r.id for r in leases]))
                .values(state=RELEASED, ended_at=now, outcome={"kind": "released", "reason": reason})
            )
            for r in leases:
                ended.setdefault(r.worker_id, []).append(r.id)
                res = await s.execute(
                    update(TASKS)
                    .where(TASKS.c.id == r.task_id, TASKS.c.lease_id == r.id, TASKS.c.status == RUNNING)
                    .values(
                        status=QUEUED,
                        attempt=TASKS.c.attempt - 1,
                        available_at=now,
                        lease_id=None,
                        worker_id=None,
                        lease_expires_at=None,
                        updated_at=now,
                    )
                    .returning(TASKS.c.capability)
                )
                caps.extend(c for (c,) in res.all())
        self.end_leases(ended)
        if caps:
            self.notifier.publish("ready", {"c": sorted(set(caps))})

    # -- dispatch -----------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_s)
            except asyncio.TimeoutError:
                self._backlog_all = True  # periodic poll: other replicas' work, missed wake-ups
            self._wake.clear()
            try:
                backlog_all = self._backlog_all
                self._backlog_all = False
                while await self.dispatch_round():
                    pass
                if backlog_all and not self._demand():
                    self._backlog_all = True  # nobody could take work: look again next time
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch round failed")
                await asyncio.sleep(0.2)

    def _demand(self) -> dict[tuple[str, str | None, str | None], list[tuple[Session, int]]]:
        demand: dict[tuple[str, str | None, str | None], list[tuple[Session, int]]] = {}
        for session in self.sessions.values():
            if session.closed or not session.registered or session.paused:
                continue
            for ctype, state in session.caps.items():
                free = state.free
                if free > 0:
                    demand.setdefault((ctype, state.spec.scope, session.tenant), []).append((session, free))
        return demand

    async def dispatch_round(self) -> bool:
        """Claim queued tasks for the free slots of local streams; True if there may be more."""
        async with self._dispatch_lock:
            return await self._dispatch_round()

    async def _dispatch_round(self) -> bool:
        demand = self._demand()
        if not demand:
            return False
        claim = Claim()
        try:
            async with self.store.tx() as s:
                await self.claim(s, demand, claim)
        except BaseException:
            self.abandon(claim)
            raise
        self.deliver(claim)
        return claim.saturated

    async def claim(
        self, s: Exec, demand: dict[tuple[str, str | None, str | None], list[tuple[Session, int]]], claim: Claim
    ) -> None:
        """Inside transaction ``s``: lease the oldest queued tasks to the given free slots.

        Slots are counted at once; call ``deliver(claim)`` once the transaction committed, or
        ``abandon(claim)`` if it did not.
        """
        now = utcnow()
        # Workers scoped to one user go first, so "any" workers do not take their tasks.
        for key in sorted(demand, key=lambda k: (k[1] is None, k[0])):
            ctype, scope, tenant = key
            slots = demand[key]
            wanted = sum(free for _, free in slots)
            query = select(TASKS).where(
                TASKS.c.status == QUEUED,
                TASKS.c.capability == ctype,
                TASKS.c.available_at <= now,
                or_(TASKS.c.deadline_at.is_(None), TASKS.c.deadline_at > now),
            )
            if scope is not None:
                query = query.where(TASKS.c.on_behalf_of == scope)
            if tenant is not None:
                query = query.where(TASKS.c.owner == tenant)
            query = query.order_by(TASKS.c.available_at, TASKS.c.id).limit(wanted)
            rows = (await s.execute(query.with_for_update(skip_locked=True))).mappings().all()
            if len(rows) >= wanted:
                claim.saturated = True
                claim.more.add(ctype)
            elif scope is None and tenant is None:
                claim.drained.add(ctype)
            if not rows:
                continue
            cdef = await self.capabilities.get(ctype)
            assignments, bad = self._assign(rows, slots, cdef.input_schema if cdef else None)
            claim.failed.extend(bad)
            if bad:
                await s.execute(
                    update(TASKS)
                    .where(TASKS.c.id.in_(bad))
                    .values(
                        status=FAILED,
                        finished_at=now,
                        updated_at=now,
                        error={"code": "input_schema_mismatch", "message": "input does not match the schema"},
                    )
                )
            if not assignments:
                continue
            lease_rows: list[dict[str, Any]] = []
            task_params: list[dict[str, Any]] = []
            for session, row in assignments:
                TASK_DISPATCH_LATENCY.observe(max(0.0, (now - as_utc(row["available_at"])).total_seconds()))
                spec = session.caps[ctype].spec
                ttl_ms = spec.lease_ttl_ms or (cdef.lease_ttl_ms if cdef else None)
                ttl_ms = ttl_ms or int(self.config.lease_ttl_s * 1000)
                lease_id = new_id("lse")
                expires = now + timedelta(milliseconds=ttl_ms)
                attempt = row["attempt"] + 1
                lease_rows.append(
                    {
                        "id": lease_id,
                        "task_id": row["id"],
                        "worker_id": session.worker_id,
                        "key_id": session.key_id,
                        "capability": ctype,
                        "attempt": attempt,
                        "state": ACTIVE,
                        "ttl_ms": ttl_ms,
                        "issued_at": now,
                        "expires_at": expires,
                    }
                )
                task_params.append(
                    {"b_id": row["id"], "b_lease": lease_id, "b_worker": session.worker_id, "b_exp": expires}
                )
                claim.offers.append(
                    (
                        session,
                        LeaseFrame(
                            lease_id=lease_id,
                            expires_at=expires,
                            task_id=row["id"],
                            workflow_id=row["workflow_id"],
                            capability=ctype,
                            on_behalf_of=row["on_behalf_of"],
                            input=row["input"],
                            attempt=attempt,
                            metadata=row["metadata"] or {},
                            input_schema=cdef.input_schema if cdef else None,
                            output_schema=cdef.output_schema if cdef else None,
                        ),
                        ctype,
                    )
                )
                # count the slot now, so a concurrent claim cannot hand it out twice
                session.add_lease(lease_id, ctype)
            await s.execute(LEASES.insert(), lease_rows)
            await s.execute(
                update(TASKS)
                .where(TASKS.c.id == bindparam("b_id"))
                .values(
                    status=RUNNING,
                    attempt=TASKS.c.attempt + 1,
                    lease_id=bindparam("b_lease"),
                    worker_id=bindparam("b_worker"),
                    lease_expires_at=bindparam("b_exp"),
                    started_at=func.coalesce(TASKS.c.started_at, now),
                    updated_at=now,
                ),
                task_params,
            )

    def abandon(self, claim: Claim) -> None:
        """The transaction of ``claim`` rolled back: give the counted slots back."""
        for session, frame, _ in claim.offers:
            session.end_lease(frame.lease_id)

    def deliver(self, claim: Claim) -> None:
        """After the claim's transaction committed: queue lease frames, note what is left queued."""
        self._backlog -= claim.drained
        self._backlog |= claim.more
        orphans: list[str] = []
        for session, frame, _ in claim.offers:
            if session.closed:  # the stream closed while we committed
                orphans.append(frame.lease_id)
                continue
            session.send(frame)
        if orphans:
            asyncio.get_running_loop().create_task(self.release(orphans, reason="stream closed before delivery"))
        if claim.failed:
            self.notifier.publish("done", {"ids": claim.failed})

    def try_claim_lock(self) -> bool:
        """Take the dispatch lock only if it is free (for claims inside another write transaction,
        which must never wait for it: a dispatch round holding it may be waiting for that write)."""
        return self._dispatch_lock.try_acquire()

    def release_claim_lock(self) -> None:
        self._dispatch_lock.release()

    def local_demand(
        self, capabilities: Iterable[str]
    ) -> dict[tuple[str, str | None, str | None], list[tuple[Session, int]]]:
        """Free local slots for these capabilities only (for dispatching inside another write)."""
        wanted = set(capabilities)
        return {key: slots for key, slots in self._demand().items() if key[0] in wanted}

    @staticmethod
    def _assign(
        rows: Any, slots: list[tuple[Session, int]], input_schema: Any
    ) -> tuple[list[tuple[Session, Any]], list[str]]:
        """Spread rows over the sessions' free slots, most free first; rows failing the schema go aside."""
        free = {id(sess): n for sess, n in slots}
        ring = sorted((sess for sess, _ in slots), key=lambda sess: -free[id(sess)])
        out: list[tuple[Session, Any]] = []
        bad: list[str] = []
        i = 0
        for row in rows:
            if input_schema is not None and schema_errors(input_schema, row["input"], limit=1):
                bad.append(row["id"])
                continue
            for _ in range(len(ring)):
                sess = ring[i % len(ring)]
                i += 1
                if free[id(sess)] > 0:
                    free[id(sess)] -= 1
                    out.append((sess, row))
                    break
        return out, bad

    # -- reaper -------------------------------------------------------------------------------

    async def _reaper_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.reaper_interval_s)
            try:
                while await self.reap_once():
                    pass
                if loop.time() - self._last_reconcile >= _RECONCILE_EVERY_S:
                    self._last_reconcile = loop.time()
                    await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reaper round failed")

    async def reap_once(self, limit: int = 500) -> bool:
        """Expire overdue leases and time out overdue tasks; True if a full batch was handled."""
        now = utcnow()
        cancels: list[tuple[str, str, str]] = []
        ended: dict[str, list[str]] = {}
        done: list[str] = []
        requeued: list[str] = []
        expired: Sequence[Any] = []
        full = False
        async with self.store.tx() as s:
            expired = (
                (
                    await s.execute(
                        select(LEASES)
                        .where(LEASES.c.state == ACTIVE, LEASES.c.expires_at < now)
                        .order_by(LEASES.c.expires_at)
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                )
                .mappings()
                .all()
            )
            full = len(expired) >= limit
            if expired:
                await s.execute(
                    update(LEASES)
                    .where(LEASES.c.id.in_([m["id"] for m in expired]))
                    .values(state=EXPIRED, ended_at=now, outcome={"kind": "expired"})
                )
                by_task = {m["task_id"]: m for m in expired}
                tasks = (
                    (
                        await s.execute(
                            select(TASKS)
                            .where(TASKS.c.id.in_(sorted(by_task)), TASKS.c.status == RUNNING)
                            .with_for_update(skip_locked=True)
                        )
                    )
                    .mappings()
                    .all()
                )
                for lease in expired:
                    cancels.append((lease["id"], lease["worker_id"], "lease expired"))
                    ended.setdefault(lease["worker_id"], []).append(lease["id"])
                for task in tasks:
                    lease = by_task[task["id"]]
                    if task["lease_id"] != lease["id"]:
                        continue
                    error = {
                        "code": "lease_expired",
                        "message": f"lease {lease['id']} of worker {lease['worker_id']} expired without heartbeats",
                        "attempt": task["attempt"],
                        "worker_id": lease["worker_id"],
                    }
                    if task["attempt"] >= task["max_attempts"]:
                        error["code"] = "max_attempts_exceeded"
                        error["last_code"] = "lease_expired"
                        values: dict[str, Any] = {"status": FAILED, "finished_at": now, "error": error}
                        done.append(task["id"])
                    else:
                        values = {
                            "status": QUEUED,
                            "available_at": now,
                            "error": error,
                            "lease_id": None,
                            "worker_id": None,
                            "lease_expires_at": None,
                        }
                        requeued.append(task["capability"])
                    await s.execute(update(TASKS).where(TASKS.c.id == task["id"]).values(updated_at=now, **values))
            overdue = (
                (
                    await s.execute(
                        select(TASKS.c.id, TASKS.c.status, TASKS.c.lease_id, TASKS.c.worker_id, TASKS.c.timeout_s)
                        .where(TASKS.c.deadline_at < now, TASKS.c.status.in_([QUEUED, RUNNING]))
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                )
                .mappings()
                .all()
            )
            full = full or len(overdue) >= limit
            for task in overdue:
                await s.execute(
                    update(TASKS)
                    .where(TASKS.c.id == task["id"])
                    .values(
                        status=FAILED,
                        finished_at=now,
                        updated_at=now,
                        error={"code": "timeout", "message": f"task did not finish within {task['timeout_s']}s"},
                    )
                )
                done.append(task["id"])
                if task["status"] == RUNNING and task["lease_id"]:
                    await s.execute(
                        update(LEASES)
                        .where(LEASES.c.id == task["lease_id"], LEASES.c.state == ACTIVE)
                        .values(state=LEASE_CANCELLED, ended_at=now, outcome={"kind": "timeout"})
                    )
                    cancels.append((task["lease_id"], task["worker_id"], "task timed out"))
                    ended.setdefault(task["worker_id"], []).append(task["lease_id"])
        stale = sorted({lease["worker_id"] for lease in expired})
        remote_stale = [w for w in stale if not self._pause(w)]
        if remote_stale:
            self.notifier.publish("stale", {"w": remote_stale})
        if cancels:
            self.send_cancels(cancels)
        if ended:
            self.end_leases(ended)
        if done:
            self.notifier.publish("done", {"ids": done})
        if requeued:
            self.notifier.publish("ready", {"c": sorted(set(requeued))})
        return full

    async def reconcile(self) -> None:
        """Re-sync local slot counts with the store (covers lost notifications)."""
        async with self._dispatch_lock:
            await self._reconcile()

    async def _reconcile(self) -> None:
        silent_for = max(6 * self.config.heartbeat_interval_s, 30.0)
        now = time.monotonic()
        for sess in list(self.sessions.values()):
            if not sess.closed and now - sess.last_seen > silent_for:
                # open socket, no heartbeat for long: a dead or wedged worker; make it reconnect
                self._drop(sess, f"no heartbeat for {silent_for:.0f}s", code="heartbeat_timeout", reconnectable=True)
        local = {wid: sess for wid, sess in self.sessions.items() if sess.registered and not sess.closed}
        if not local:
            return
        async with self.store.read() as s:
            rows = (
                await s.execute(
                    select(LEASES.c.id, LEASES.c.worker_id, LEASES.c.capability).where(
                        LEASES.c.worker_id.in_(sorted(local)), LEASES.c.state == ACTIVE
                    )
                )
            ).all()
            paused = sorted(wid for wid, sess in local.items() if sess.paused)
            beats = (
                (
                    await s.execute(select(WORKERS.c.id, WORKERS.c.last_heartbeat_at).where(WORKERS.c.id.in_(paused)))
                ).all()
                if paused
                else []
            )
        for beat in beats:
            sess = local[beat[0]]
            if beat[1] is not None and sess.paused_at is not None and as_utc(beat[1]) > sess.paused_at:
                self._resume(beat[0])
        active: dict[str, dict[str, str]] = {}
        for row in rows:
            active.setdefault(row[1], {})[row[0]] = row[2]
        freed = False
        for wid, sess in local.items():
            held = active.get(wid, {})
            for lease_id in list(sess.lease_cap):
                if lease_id not in held:
                    freed = sess.end_lease(lease_id) or freed
        if freed:
            self._wake.set()


def _result_span(req: ResultRequest, lease: dict[str, Any], task: dict[str, Any]) -> None:
    """Record the applied result as a span: child of the worker's handler span, else of the submitter's."""
    parent = {"traceparent": req.traceparent} if req.traceparent else (task.get("metadata") or {})
    attributes = {
        "portside.task.id": task["id"],
        "portside.task.capability": task["capability"],
        "portside.lease.id": lease["id"],
        "portside.result": "ack" if req.ok else f"nack:{req.kind}",
        "portside.task.status": task["status"],
    }
    with tracing.span(f"task.result {task['capability']}", attributes, parent=parent):
        pass
