"""System and store figures for ``/v1/metrics``, Symbiont's ``/api/v1/metrics`` and Prometheus.

Host figures come from psutil (memory and disk of the machine; disk of the data directory's file
system; CPU is the machine-wide share since the previous sample). Counts come from the store
tables of each area, imported lazily and queried defensively (an area missing from a build
contributes zeros), plus the in-process state of the MCP hub and HTTP inputs.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portside.server.store import Database

log = logging.getLogger("portside.metrics")
STARTED = time.time()


@dataclass(frozen=True)
class HostFigures:
    """Machine and process figures at one instant."""

    memory_total_bytes: int
    memory_used_bytes: int
    memory_percent: float
    cpu_percent: float
    cpu_count: int
    load_average: tuple[float, float, float]
    disk_total_bytes: int
    disk_used_bytes: int
    disk_percent: float
    process_rss_bytes: int
    process_cpu_percent: float
    process_threads: int
    process_open_fds: int


@dataclass(frozen=True)
class Snapshot:
    """Everything the metrics doors render."""

    uptime_seconds: float
    host: HostFigures
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def count(self, group: str, key: str | None = None) -> int:
        """A count: one key of a group, or the sum of the group."""
        values = self.counts.get(group, {})
        if key is not None:
            return int(values.get(key, 0))
        return int(sum(values.values()))


_TABLES: dict[str, tuple[str, str, str | None]] = {
    # group: (module, model, column to group by; None = plain count under "total")
    "sandboxes": ("portside.server.sandboxes.models", "SandboxRow", "status"),
    "sandbox_executions": ("portside.server.sandboxes.models", "ExecutionRow", None),
    "flow_executions": ("portside.server.flows.models", "ExecutionRow", "status"),
    "flows": ("portside.server.flows.models", "FlowRow", None),
    "tasks": ("portside.server.workers.models", "TaskRow", "status"),
    "workers": ("portside.server.workers.models", "WorkerRow", "status"),
    "registry_agents": ("portside.server.agents.models", "AgentRow", "is_active"),
    "symbiont_agents": ("portside.server.deployments.tables", "SymbiontAgentRow", None),
    "agent_deployments": ("portside.server.deployments.tables", "AgentDeploymentRow", "status"),
    "secrets": ("portside.server.secrets.tables", "SecretMetaRow", None),
    "knowledge_items": ("portside.server.knowledge.models", "KnowledgeItemRow", None),
    "mcp_servers": ("portside.server.mcp_hub.models", "McpServerRow", None),
    "mcp_tool_calls": ("portside.server.mcp_hub.models", "McpToolCallRow", "outcome"),
    "http_inputs": ("portside.server.inputs.models", "HttpInputRow", "status"),
    "http_input_requests": ("portside.server.inputs.models", "HttpInputRequestRow", "outcome"),
}


def _model(module: str, name: str) -> Any | None:
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def _key(value: Any) -> str:
    if isinstance(value, bool):
        return "active" if value else "inactive"
    return str(value)


#: groups counting live rows only: a soft-deleted row (``deleted_at`` set) is history, not state
_LIVE_ONLY = frozenset({"sandboxes"})


async def _group(session: AsyncSession, model: Any, column: str | None, *, live_only: bool = False) -> dict[str, int]:
    where = (model.deleted_at.is_(None),) if live_only else ()
    if column is None:
        stmt = select(func.count()).select_from(model).where(*where)
        return {"total": int((await session.execute(stmt)).scalar_one())}
    col = getattr(model, column)
    rows = (await session.execute(select(col, func.count()).where(*where).group_by(col))).all()
    return {_key(k): int(v) for k, v in rows}


def _open_fds(proc: psutil.Process) -> int:
    try:
        return int(proc.num_fds())
    except (psutil.Error, AttributeError):
        return 0


class MetricsCollector:
    """Collects a :class:`Snapshot` on demand."""

    def __init__(self, db: Database, data_dir: Path, services: Mapping[str, Any]) -> None:
        self.db = db
        self.data_dir = data_dir
        self.services = services
        self._proc = psutil.Process(os.getpid())
        self._cpu: tuple[float, float, float] = (0.0, 0.0, 0.0)  # (sampled at, machine %, process %)

    def prime(self) -> None:
        """Start the CPU counters, so the first real sample covers the time since start."""
        psutil.cpu_percent(interval=None)
        self._proc.cpu_percent(interval=None)
        self._cpu = (time.monotonic(), 0.0, 0.0)

    def _cpu_percents(self) -> tuple[float, float]:
        """(machine, process) CPU % over at least the last second (a closer sample would be noise)."""
        at, machine, process = self._cpu
        now = time.monotonic()
        if now - at >= 1.0:
            machine = float(psutil.cpu_percent(interval=None))
            process = float(self._proc.cpu_percent(interval=None))
            self._cpu = (now, machine, process)
        return machine, process

    def _host(self) -> HostFigures:
        vm = psutil.virtual_memory()
        try:
            disk = psutil.disk_usage(str(self.data_dir))
            disk_total, disk_used, disk_pct = int(disk.total), int(disk.used), float(disk.percent)
        except OSError:
            disk_total = disk_used = 0
            disk_pct = 0.0
        try:
            load = tuple(float(x) for x in os.getloadavg())
        except OSError:  # pragma: no cover - not on Linux
            load = (0.0, 0.0, 0.0)
        cpu, pcpu = self._cpu_percents()
        with self._proc.oneshot():
            rss = int(self._proc.memory_info().rss)
            threads = int(self._proc.num_threads())
            fds = _open_fds(self._proc)
        return HostFigures(
            memory_total_bytes=int(vm.total),
            memory_used_bytes=int(vm.total - vm.available),
            memory_percent=float(vm.percent),
            cpu_percent=cpu,
            cpu_count=int(psutil.cpu_count() or 1),
            load_average=(load[0], load[1], load[2]),
            disk_total_bytes=disk_total,
            disk_used_bytes=disk_used,
            disk_percent=disk_pct,
            process_rss_bytes=rss,
            process_cpu_percent=pcpu,
            process_threads=threads,
            process_open_fds=fds,
        )

    async def _counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        async with self.db.session() as s:
            for group, (module, name, column) in _TABLES.items():
                model = _model(module, name)
                if model is None:
                    continue
                try:
                    out[group] = await _group(s, model, column, live_only=group in _LIVE_ONLY)
                except Exception as exc:  # a table missing from this build: report zeros, keep going
                    log.debug("metrics: cannot count %s: %s", group, exc)
                    await s.rollback()
            deployments = _model("portside.server.deployments.tables", "AgentDeploymentRow")
            if deployments is not None:
                try:
                    stmt = select(func.count(distinct(deployments.agent_id))).where(deployments.status == "running")
                    out.setdefault("symbiont_agents", {})["running"] = int((await s.execute(stmt)).scalar_one())
                except Exception:
                    await s.rollback()
        return out

    async def _vector_items(self, counts: dict[str, dict[str, int]]) -> int:
        knowledge = self.services.get("knowledge")
        count = getattr(knowledge, "count", None)
        if callable(count):
            try:
                return int(await count())
            except Exception as exc:
                log.debug("metrics: knowledge count failed: %s", exc)
        return int(counts.get("knowledge_items", {}).get("total", 0))

    async def snapshot(self) -> Snapshot:
        host = await asyncio.to_thread(self._host)
        counts = await self._counts()
        extra: dict[str, Any] = {"vector_db_items": await self._vector_items(counts)}
        hub = self.services.get("mcp_hub")
        connected = getattr(hub, "connected_count", None)
        extra["mcp_connections"] = int(connected()) if callable(connected) else 0
        live_totals = getattr(self.services.get("inputs"), "live_totals", None)
        if callable(live_totals):
            totals = live_totals()
            extra["http_input_active_requests"] = int(totals.get("active_requests", 0))
            extra["http_input_rejected"] = int(totals.get("rejected", 0))
        figures = getattr(self.services.get("retention"), "figures", None)
        if callable(figures):
            extra["retention"] = figures()
        return Snapshot(uptime_seconds=time.time() - STARTED, host=host, counts=counts, extra=extra)


def agent_counts(snap: Snapshot) -> tuple[int, int]:
    """(total, active) agents over both registries.

    Total = Symbiont agents + registry (flows / AI Spine) agents. Active = Symbiont agents with a
    running deployment + registry agents marked active.
    """
    symbiont_total = snap.count("symbiont_agents", "total")
    registry = snap.counts.get("registry_agents", {})
    total = symbiont_total + sum(registry.values())
    active = snap.count("symbiont_agents", "running") + int(registry.get("active", 0))
    return total, active


def system_metrics(snap: Snapshot) -> dict[str, Any]:
    """Symbiont's ``SystemMetrics`` (all 11 fields, ints as ints) plus Portside's counts."""
    total, active = agent_counts(snap)
    h = snap.host
    return {
        "uptime_seconds": int(snap.uptime_seconds),
        "memory_usage_bytes": h.memory_used_bytes,
        "memory_usage_percent": round(h.memory_percent, 2),
        "cpu_usage_percent": round(h.cpu_percent, 2),
        "disk_usage_bytes": h.disk_used_bytes,
        "disk_usage_percent": round(h.disk_percent, 2),
        "active_agents": active,
        "total_agents": total,
        "secrets_count": snap.count("secrets", "total"),
        "mcp_connections": int(snap.extra.get("mcp_connections", 0)),
        "vector_db_items": int(snap.extra.get("vector_db_items", 0)),
        "sandboxes": dict(snap.counts.get("sandboxes", {})),
        "executions": dict(snap.counts.get("flow_executions", {})),
        "tasks": dict(snap.counts.get("tasks", {})),
    }


def native_metrics(snap: Snapshot) -> dict[str, Any]:
    """``GET /v1/metrics``: host, process and every count."""
    total, active = agent_counts(snap)
    h = snap.host
    return {
        "uptime_seconds": round(snap.uptime_seconds, 3),
        "host": {
            "cpu_percent": round(h.cpu_percent, 2),
            "cpu_count": h.cpu_count,
            "load_average": list(h.load_average),
            "memory_total_bytes": h.memory_total_bytes,
            "memory_used_bytes": h.memory_used_bytes,
            "memory_percent": round(h.memory_percent, 2),
            "disk_total_bytes": h.disk_total_bytes,
            "disk_used_bytes": h.disk_used_bytes,
            "disk_percent": round(h.disk_percent, 2),
        },
        "process": {
            "rss_bytes": h.process_rss_bytes,
            "cpu_percent": round(h.process_cpu_percent, 2),
            "threads": h.process_threads,
            "open_fds": h.process_open_fds,
        },
        "agents": {"total": total, "active": active},
        "counts": {k: dict(v) for k, v in snap.counts.items()},
        "mcp_connections": int(snap.extra.get("mcp_connections", 0)),
        "vector_db_items": int(snap.extra.get("vector_db_items", 0)),
        "http_inputs": {
            "active_requests": int(snap.extra.get("http_input_active_requests", 0)),
            "rejected_since_start": int(snap.extra.get("http_input_rejected", 0)),
        },
        "retention": dict(snap.extra.get("retention") or {}),
    }
