"""Flow definitions (versioned) and executions: the services behind every flow door."""

from __future__ import annotations

import builtins
import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from portside.server import tracing
from portside.server.agents.service import AgentService
from portside.server.clock import utcnow
from portside.server.errors import Conflict, InvalidInput, NotFound
from portside.server.flows.events import ExecutionHub, wait_event
from portside.server.flows.models import ExecutionRow, FlowRow, FlowVersionRow, NodeRunRow
from portside.server.flows.schema import EXECUTION_STATUSES, TERMINAL_EXECUTION, FlowDefinition
from portside.server.flows.validation import validate_flow
from portside.server.flows.views import ExecutionView, FlowView, execution_view, flow_view
from portside.server.ids import new_id
from portside.server.store import Database

if TYPE_CHECKING:
    from portside.server.flows.engine import Engine

_CACHE_SIZE = 1024
MAX_INPUT_BYTES = 4 * 1024 * 1024


def checksum(definition: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _bump(label: str) -> str:
    parts = label.split(".")
    if parts and parts[-1].isdigit():
        parts[-1] = str(int(parts[-1]) + 1)
        return ".".join(parts)
    return label + ".1"


def _flow_not_found(flow_id: str, version: int | None = None) -> NotFound:
    what = f"flow '{flow_id}'" + (f" version {version}" if version is not None else "")
    return NotFound(f"{what} not found", code="flow_not_found", details={"flow_id": flow_id})


class FlowService:
    """Saves, versions, reads and deletes flow definitions."""

    def __init__(self, db: Database, agents: AgentService) -> None:
        self.db = db
        self.agents = agents
        self._definitions: OrderedDict[tuple[str, int], FlowDefinition] = OrderedDict()

    async def validate(self, raw: Any) -> FlowDefinition:
        """Check a definition without saving it (400 with every problem found)."""
        return await validate_flow(raw, self.agents.existing)

    async def save(
        self, raw: Any, *, created_by: str = "admin", source: str = "api", mode: str = "create"
    ) -> tuple[FlowView, bool]:
        """Validate and store a definition.

        ``mode``: ``create`` (409 if the flow exists), ``update`` (404 if it does not) or ``upsert``.
        An unchanged definition creates no new version. Returns (flow at its current version, changed).
        """
        flow = await self.validate(raw)
        definition = flow.model_dump(mode="json", exclude_none=True)
        digest = checksum(definition)
        for _ in range(3):
            try:
                return await self._save(flow, definition, digest, created_by, source, mode)
            except IntegrityError:
                if mode == "create":
                    raise Conflict(
                        f"flow '{flow.flow_id}' already exists", code="flow_exists", details={"flow_id": flow.flow_id}
                    ) from None
        raise Conflict(f"flow '{flow.flow_id}' is being changed concurrently; retry", code="flow_busy")

    async def _save(
        self, flow: FlowDefinition, definition: dict[str, Any], digest: str, created_by: str, source: str, mode: str
    ) -> tuple[FlowView, bool]:
        now = utcnow()
        async with self.db.transaction() as s:
            row = (
                await s.execute(select(FlowRow).where(FlowRow.id == flow.flow_id).with_for_update())
            ).scalar_one_or_none()
            if row is None:
                if mode == "update":
                    raise _flow_not_found(flow.flow_id)
                row = FlowRow(
                    id=flow.flow_id,
                    name=flow.name or flow.flow_id,
                    description=flow.description,
                    current_version=1,
                    created_by=created_by,
                    source=source,
                    created_at=now,
                    updated_at=now,
                )
                s.add(row)
                await s.flush()
                number, label = 1, flow.version
            else:
                if mode == "create":
                    raise Conflict(
                        f"flow '{flow.flow_id}' already exists", code="flow_exists", details={"flow_id": flow.flow_id}
                    )
                current = await s.get(FlowVersionRow, (row.id, row.current_version))
                if current is not None and current.checksum == digest:
                    return flow_view(row, current), False
                number = row.current_version + 1
                label = flow.version
                if current is not None and label == current.label:
                    label = _bump(current.label)
                row.current_version = number
                row.name = flow.name or flow.flow_id
                row.description = flow.description
                row.source = source
                row.updated_at = now
            definition = {**definition, "version": label}
            version = FlowVersionRow(
                flow_id=flow.flow_id,
                version=number,
                label=label,
                definition=definition,
                checksum=digest,
                source=source,
                created_by=created_by,
                created_at=now,
            )
            s.add(version)
        return flow_view(row, version), True

    async def get(self, flow_id: str, version: int | None = None) -> FlowView:
        """The flow at ``version`` (default: its current version)."""
        async with self.db.session() as s:
            row = await s.get(FlowRow, flow_id)
            if row is None:
                raise _flow_not_found(flow_id)
            ver = await s.get(FlowVersionRow, (flow_id, version or row.current_version))
        if ver is None:
            raise _flow_not_found(flow_id, version)
        return flow_view(row, ver)

    async def list(self) -> list[FlowView]:
        """Every flow at its current version, by id."""
        stmt = (
            select(FlowRow, FlowVersionRow)
            .join(
                FlowVersionRow,
                (FlowVersionRow.flow_id == FlowRow.id) & (FlowVersionRow.version == FlowRow.current_version),
            )
            .order_by(FlowRow.id)
        )
        async with self.db.session() as s:
            rows = (await s.execute(stmt)).all()
        return [flow_view(f, v) for f, v in rows]

    async def versions(self, flow_id: str) -> builtins.list[FlowView]:
        """Every saved version of a flow, oldest first."""
        async with self.db.session() as s:
            row = await s.get(FlowRow, flow_id)
            if row is None:
                raise _flow_not_found(flow_id)
            stmt = select(FlowVersionRow).where(FlowVersionRow.flow_id == flow_id).order_by(FlowVersionRow.version)
            versions = (await s.execute(stmt)).scalars().all()
        return [flow_view(row, v) for v in versions]

    async def delete(self, flow_id: str) -> None:
        """Delete a flow and its versions; 409 while executions of it are unfinished."""
        async with self.db.transaction() as s:
            row = await s.get(FlowRow, flow_id)
            if row is None:
                raise _flow_not_found(flow_id)
            active = (
                await s.execute(
                    select(func.count())
                    .select_from(ExecutionRow)
                    .where(ExecutionRow.flow_id == flow_id, ExecutionRow.status.in_(("pending", "running")))
                )
            ).scalar_one()
            if active:
                raise Conflict(
                    f"flow '{flow_id}' has {active} unfinished execution(s); cancel them first",
                    code="flow_in_use",
                    details={"active_executions": int(active)},
                )
            await s.execute(delete(FlowVersionRow).where(FlowVersionRow.flow_id == flow_id))
            await s.delete(row)
        for key in [k for k in self._definitions if k[0] == flow_id]:
            self._definitions.pop(key, None)

    async def definition(self, flow_id: str, version: int) -> FlowDefinition:
        """An immutable version's definition (cached)."""
        key = (flow_id, version)
        hit = self._definitions.get(key)
        if hit is not None:
            self._definitions.move_to_end(key)
            return hit
        async with self.db.session() as s:
            ver = await s.get(FlowVersionRow, key)
        if ver is None:
            raise _flow_not_found(flow_id, version)
        flow = FlowDefinition.model_validate(ver.definition)
        self._definitions[key] = flow
        if len(self._definitions) > _CACHE_SIZE:
            self._definitions.popitem(last=False)
        return flow

    async def count(self) -> int:
        async with self.db.session() as s:
            return int((await s.execute(select(func.count()).select_from(FlowRow))).scalar_one())


def _execution_not_found(execution_id: str) -> NotFound:
    return NotFound(
        f"execution '{execution_id}' not found", code="execution_not_found", details={"execution_id": execution_id}
    )


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 3)

    return {"p50": pick(0.5), "p90": pick(0.9), "p95": pick(0.95), "p99": pick(0.99), "max": round(ordered[-1], 3)}


class ExecutionService:
    """Starts, reads, waits for and cancels executions. The engine does the running."""

    def __init__(self, db: Database, flows: FlowService, agents: AgentService, hub: ExecutionHub) -> None:
        self.db = db
        self.flows = flows
        self.agents = agents
        self.hub = hub
        self.engine: Engine | None = None

    async def start(
        self,
        flow_id: str,
        input_data: Any,
        *,
        owner: str = "admin",
        metadata: dict[str, Any] | None = None,
        version: int | None = None,
        timeout_seconds: float | None = None,
    ) -> ExecutionView:
        """Record a new execution (status ``pending``) and hand it to an engine; returns at once."""
        if not isinstance(input_data, dict):
            raise InvalidInput("input_data must be a JSON object", code="invalid_input")
        if len(json.dumps(input_data, default=str)) > MAX_INPUT_BYTES:
            raise InvalidInput(f"input_data is larger than {MAX_INPUT_BYTES} bytes", code="input_too_large")
        if timeout_seconds is not None and timeout_seconds <= 0:
            raise InvalidInput("timeout must be positive", code="invalid_input")
        view = await self.flows.get(flow_id, version)
        flow = view.definition
        now = utcnow()
        timeout = timeout_seconds or flow.timeout_seconds
        row = ExecutionRow(
            id=new_id("exec"),
            flow_id=flow_id,
            flow_version=view.revision,
            owner=owner,
            status="pending",
            input_data=input_data,
            meta=tracing.inject(dict(metadata or {})),  # + traceparent when tracing: the engine continues it
            cancel_requested=False,
            deadline_at=now + timedelta(seconds=timeout) if timeout else None,
            lease_token=0,
            resumes=0,
            created_at=now,
            updated_at=now,
        )
        engine = self.engine
        adopt = engine is not None and engine.can_adopt()
        if adopt and engine is not None:
            row.lease_owner = engine.owner
            row.lease_expires_at = now + timedelta(seconds=engine.settings.lease_seconds)
            row.lease_token = 1
        nodes = [
            NodeRunRow(
                execution_id=row.id,
                node_id=n.id,
                kind=n.type,
                status="pending",
                attempts=0,
                attempt_log=[],
                updated_at=now,
            )
            for n in flow.nodes
        ]
        async with self.db.transaction() as s:
            s.add(row)
            await s.flush()
            s.add_all(nodes)
        if engine is not None:
            if adopt:
                engine.adopt(row.id, 1)
            else:
                engine.wake()
        return execution_view(row, nodes)

    async def get(self, execution_id: str, *, owner: str | None = None, with_nodes: bool = True) -> ExecutionView:
        """One execution; ``owner`` (None = any) hides other callers' executions."""
        async with self.db.session() as s:
            row = await s.get(ExecutionRow, execution_id)
            if row is None or (owner is not None and row.owner != owner):
                raise _execution_not_found(execution_id)
            nodes: list[NodeRunRow] = []
            if with_nodes:
                stmt = select(NodeRunRow).where(NodeRunRow.execution_id == execution_id)
                nodes = list((await s.execute(stmt)).scalars().all())
        if nodes:
            flow = await self.flows.definition(row.flow_id, row.flow_version)
            order = {n.id: i for i, n in enumerate(flow.nodes)}
            nodes.sort(key=lambda n: (order.get(n.parent_id or n.node_id, 1 << 30), n.parent_id is not None, _item(n)))
        return execution_view(row, nodes)

    async def list(
        self,
        *,
        owner: str | None = None,
        flow_id: str | None = None,
        status: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> tuple[builtins.list[ExecutionView], int]:
        """Executions, newest first, and how many match in total."""
        if status is not None and status not in EXECUTION_STATUSES:
            raise InvalidInput(f"unknown status '{status}'", details={"allowed": list(EXECUTION_STATUSES)})
        conds = []
        if owner is not None:
            conds.append(ExecutionRow.owner == owner)
        if flow_id is not None:
            conds.append(ExecutionRow.flow_id == flow_id)
        if status is not None:
            conds.append(ExecutionRow.status == status)
        stmt = select(ExecutionRow).where(*conds).order_by(ExecutionRow.created_at.desc(), ExecutionRow.id.desc())
        async with self.db.session() as s:
            total = (await s.execute(select(func.count()).select_from(ExecutionRow).where(*conds))).scalar_one()
            rows = (await s.execute(stmt.limit(limit).offset(offset))).scalars().all()
        return [execution_view(r) for r in rows], int(total)

    async def cancel(self, execution_id: str, *, owner: str | None = None) -> ExecutionView:
        """Cancel: the execution is recorded ``cancelled`` before this returns, then its work is stopped.

        The engine running it is signalled (directly, or through ``cancel_requested`` on its next lease
        renewal on another replica); its later writes cannot overwrite the recorded cancellation.
        """
        now = utcnow()
        async with self.db.transaction() as s:
            row = await s.get(ExecutionRow, execution_id)
            if row is None or (owner is not None and row.owner != owner):
                raise _execution_not_found(execution_id)
            if row.status in TERMINAL_EXECUTION:
                if row.status == "cancelled":
                    return execution_view(row)
                raise Conflict(
                    f"execution '{execution_id}' already {row.status}",
                    code="execution_finished",
                    details={"status": row.status},
                )
            row.cancel_requested = True
            row.updated_at = now
            unclaimed = row.lease_owner is None or (row.lease_expires_at is not None and row.lease_expires_at < now)
            started = row.status != "pending"
            row.status = "cancelled"
            row.error_message = "cancelled by request" if started else "cancelled before it started"
            row.completed_at = now
            if unclaimed:  # nobody runs it: nothing to stop
                row.lease_owner = None
                row.lease_expires_at = None
                row.lease_token += 1
            await s.execute(
                update(NodeRunRow)
                .where(NodeRunRow.execution_id == execution_id, NodeRunRow.status.in_(("pending", "running")))
                .values(status="cancelled", updated_at=now)
            )
        self.hub.publish(execution_id, finished=row.status in TERMINAL_EXECUTION)
        if self.engine is not None:
            self.engine.signal_cancel(execution_id)
        return execution_view(row)

    async def wait(
        self, execution_id: str, *, owner: str | None = None, timeout: float = 30.0, with_nodes: bool = True
    ) -> ExecutionView:
        """Long-poll: return when the execution is finished or ``timeout`` seconds passed."""
        loop_time = time.monotonic()
        deadline = loop_time + max(0.0, timeout)
        with self.hub.watch(execution_id, finished_only=True) as event:
            while True:
                event.clear()
                view = await self.get(execution_id, owner=owner, with_nodes=False)
                remaining = deadline - time.monotonic()
                if view.is_terminal or remaining <= 0:
                    break
                await wait_event(event, min(remaining, 1.0))
        return await self.get(execution_id, owner=owner, with_nodes=with_nodes) if with_nodes else view

    async def events(
        self, execution_id: str, *, owner: str | None = None, poll: float = 1.0
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event name, data) pairs as the execution changes, ending after it finishes."""
        seen_status: str | None = None
        seen_nodes: dict[str, tuple[str, int]] = {}
        last_sent = time.monotonic()
        with self.hub.watch(execution_id) as event:
            while True:
                event.clear()
                view = await self.get(execution_id, owner=owner, with_nodes=True)
                if time.monotonic() - last_sent > 15:
                    last_sent = time.monotonic()
                    yield "ping", {}
                for node in view.nodes:
                    key = (node.status, node.attempts)
                    if seen_nodes.get(node.node_id) != key:
                        seen_nodes[node.node_id] = key
                        last_sent = time.monotonic()
                        yield (
                            "node",
                            {
                                "execution_id": execution_id,
                                "node_id": node.node_id,
                                "parent_id": node.parent_id,
                                "kind": node.kind,
                                "status": node.status,
                                "attempts": node.attempts,
                                "error_message": node.error_message,
                                "duration_ms": node.duration_ms,
                            },
                        )
                if view.status != seen_status:
                    seen_status = view.status
                    last_sent = time.monotonic()
                    yield "execution", {"execution_id": execution_id, "status": view.status}
                if view.is_terminal:
                    return
                await wait_event(event, poll)

    async def metrics(self) -> dict[str, Any]:
        """Counters and latency percentiles for ``/metrics``."""
        async with self.db.session() as s:
            by_status = dict(
                (await s.execute(select(ExecutionRow.status, func.count()).group_by(ExecutionRow.status))).all()
            )
            recent = (
                await s.execute(
                    select(ExecutionRow.created_at, ExecutionRow.completed_at)
                    .where(ExecutionRow.status == "completed", ExecutionRow.completed_at.is_not(None))
                    .order_by(ExecutionRow.completed_at.desc())
                    .limit(1000)
                )
            ).all()
            node_ms = (
                (
                    await s.execute(
                        select(NodeRunRow.duration_ms)
                        .where(NodeRunRow.status == "completed", NodeRunRow.duration_ms.is_not(None))
                        .order_by(NodeRunRow.completed_at.desc())
                        .limit(2000)
                    )
                )
                .scalars()
                .all()
            )
        counts = {k: int(by_status.get(k, 0)) for k in EXECUTION_STATUSES}
        durations = [(done - created).total_seconds() * 1000 for created, done in recent if done is not None]
        return {
            "executions_by_status": counts,
            "executions_total": sum(counts.values()),
            "executions_active": counts["pending"] + counts["running"],
            "execution_latency_ms": _percentiles(durations),
            "node_latency_ms": _percentiles([float(v) for v in node_ms if v is not None]),
            "average_execution_time": round(sum(durations) / len(durations) / 1000, 6) if durations else 0.0,
        }


def _item(node: NodeRunRow) -> int:
    if node.parent_id is None:
        return -1
    try:
        return int(node.node_id.rsplit("[", 1)[1].rstrip("]"))
    except (IndexError, ValueError):
        return 0
