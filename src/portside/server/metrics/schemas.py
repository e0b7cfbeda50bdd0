"""Response models of the JSON metrics: native ``GET /v1/metrics`` and Symbiont's ``GET /api/v1/metrics``."""

from __future__ import annotations

from typing import Any

from portside.server.api.wire import WireModel


class HostMetrics(WireModel):
    cpu_percent: float
    cpu_count: int
    load_average: list[float]
    memory_total_bytes: int
    memory_used_bytes: int
    memory_percent: float
    disk_total_bytes: int
    disk_used_bytes: int
    disk_percent: float


class ProcessMetrics(WireModel):
    rss_bytes: int
    cpu_percent: float
    threads: int
    open_fds: int


class AgentCounts(WireModel):
    total: int
    active: int


class HttpInputFigures(WireModel):
    active_requests: int
    rejected_since_start: int


class NativeMetrics(WireModel):
    """Host, process and store figures; ``counts`` maps a group (``sandboxes``, ``tasks`` ...) to counts by state."""

    uptime_seconds: float
    host: HostMetrics
    process: ProcessMetrics
    agents: AgentCounts
    counts: dict[str, dict[str, int]]
    mcp_connections: int
    vector_db_items: int
    http_inputs: HttpInputFigures
    retention: dict[str, Any]


class SystemMetrics(WireModel):
    """Symbiont's ``SystemMetrics`` (all eleven fields) plus Portside's counts by state."""

    uptime_seconds: int
    memory_usage_bytes: int
    memory_usage_percent: float
    cpu_usage_percent: float
    disk_usage_bytes: int
    disk_usage_percent: float
    active_agents: int
    total_agents: int
    secrets_count: int
    mcp_connections: int
    vector_db_items: int
    sandboxes: dict[str, int]
    executions: dict[str, int]
    tasks: dict[str, int]


class SymbiontHealth(WireModel):
    """Symbiont's ``HealthResponse``; ``checks`` and ``warnings`` only for key holders."""

    status: str
    uptime_seconds: int
    timestamp: str
    version: str
    checks: dict[str, dict[str, Any]] | None = None
    warnings: list[str] | None = None
