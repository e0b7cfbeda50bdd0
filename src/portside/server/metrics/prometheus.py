"""The Prometheus text exposition (0.0.4) through ``prometheus_client``.

Two sources: the process counters and histograms of :mod:`.instruments` (HTTP, sandbox creates
and execs, task dispatch, flows, MCP server tool calls), and the figures of one :class:`Snapshot`
read at scrape time — store rows by state (gauges that agree across replicas and survive
restarts), host and process figures, and the retention purge's figures (counters since start).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from portside import __version__
from portside.server.metrics import instruments
from portside.server.metrics.collector import Snapshot, agent_counts

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: group in Snapshot.counts -> (metric name, label name, help)
_GROUPED: tuple[tuple[str, str, str, str], ...] = (
    ("sandboxes", "portside_sandboxes", "status", "Live sandboxes (deleted ones excluded) by status."),
    ("flow_executions", "portside_flow_executions", "status", "Flow executions in the store by status."),
    ("tasks", "portside_tasks", "status", "Worker tasks in the store by status."),
    ("workers", "portside_workers", "status", "Workers by status."),
    ("agent_deployments", "portside_agent_deployments", "status", "Agent deployments by status."),
    (
        "mcp_tool_calls",
        "portside_mcp_tool_calls",
        "outcome",
        "Audited tool calls made through the MCP hub, by outcome.",
    ),
    ("http_inputs", "portside_http_inputs", "status", "HTTP inputs by status."),
    ("http_input_requests", "portside_http_input_requests", "outcome", "Audited webhook requests, by outcome."),
)
_TOTALS: tuple[tuple[str, str, str], ...] = (
    ("sandbox_executions", "portside_sandbox_executions", "Code executions recorded in sandboxes' histories."),
    ("flows", "portside_flows", "Saved flows."),
    ("secrets", "portside_secrets", "Stored secrets."),
    ("mcp_servers", "portside_mcp_servers", "Registered MCP servers."),
)


class _Writer:
    """Builds the metric families of one snapshot."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def gauge(self, name: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]) -> None:
        rows = list(samples)
        labels = sorted({k for lbls, _ in rows for k in lbls})
        family = GaugeMetricFamily(name, help_text, labels=labels)
        for lbls, value in rows:
            family.add_metric([lbls[k] for k in labels], float(value))
        self.families.append(family)

    def one(self, name: str, help_text: str, value: float) -> None:
        self.families.append(GaugeMetricFamily(name, help_text, value=float(value)))

    def counter(self, name: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]) -> None:
        rows = list(samples)
        labels = sorted({k for lbls, _ in rows for k in lbls})
        family = CounterMetricFamily(name, help_text, labels=labels)
        for lbls, value in rows:
            family.add_metric([lbls[k] for k in labels], float(value))
        self.families.append(family)


class _SnapshotCollector(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        yield from families(self.snap)


def render(snap: Snapshot) -> str:
    """The whole exposition for one scrape: process instruments, then the snapshot's figures."""
    registry = CollectorRegistry(auto_describe=False)
    if instruments.MULTIPROCESS:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Instruments())
    registry.register(_SnapshotCollector(snap))
    return generate_latest(registry).decode()


class _Instruments(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from instruments.REGISTRY.collect()


def families(snap: Snapshot) -> list[Metric]:
    """The metric families of one snapshot."""
    w = _Writer()
    h = snap.host
    w.gauge("portside_info", "Portside build information.", [({"version": __version__}, 1)])
    w.one("portside_uptime_seconds", "Seconds since this server process started.", snap.uptime_seconds)
    w.one("portside_host_cpu_percent", "Machine-wide CPU use since the previous sample, in percent.", h.cpu_percent)
    w.one("portside_host_cpus", "Logical CPUs of the machine.", h.cpu_count)
    w.gauge(
        "portside_host_load_average",
        "Load average of the machine.",
        [({"period": p}, v) for p, v in zip(("1m", "5m", "15m"), h.load_average, strict=True)],
    )
    w.one("portside_host_memory_total_bytes", "Memory of the machine.", h.memory_total_bytes)
    w.one("portside_host_memory_used_bytes", "Memory in use on the machine (total - available).", h.memory_used_bytes)
    w.one("portside_host_memory_percent", "Memory in use on the machine, in percent.", h.memory_percent)
    w.one("portside_host_disk_total_bytes", "Size of the data directory's file system.", h.disk_total_bytes)
    w.one("portside_host_disk_used_bytes", "Space used on the data directory's file system.", h.disk_used_bytes)
    w.one("portside_host_disk_percent", "Space used on the data directory's file system, in percent.", h.disk_percent)
    w.one("portside_process_resident_memory_bytes", "Resident memory of this server process.", h.process_rss_bytes)
    w.one(
        "portside_process_cpu_percent",
        "CPU use of this server process since the previous sample.",
        h.process_cpu_percent,
    )
    w.one("portside_process_threads", "Threads of this server process.", h.process_threads)
    w.one("portside_process_open_fds", "Open file descriptors of this server process.", h.process_open_fds)
    total, active = agent_counts(snap)
    w.one("portside_agents", "Registered agents (Symbiont agents and registry agents).", total)
    w.one("portside_agents_active", "Agents with a running deployment, or registry agents marked active.", active)
    for group, name, label, help_text in _GROUPED:
        values = snap.counts.get(group, {})
        w.gauge(name, help_text, [({label: k}, v) for k, v in sorted(values.items())])
    for group, name, help_text in _TOTALS:
        w.one(name, help_text, snap.count(group, "total"))
    w.one("portside_mcp_connections", "MCP servers this process is connected to.", snap.extra.get("mcp_connections", 0))
    w.one("portside_vector_db_items", "Items in the knowledge base.", snap.extra.get("vector_db_items", 0))
    w.one(
        "portside_http_input_active_requests",
        "Webhook requests being dispatched by this process.",
        snap.extra.get("http_input_active_requests", 0),
    )
    w.counter(
        "portside_http_input_rejected",
        "Webhook requests refused by this process since it started (signature, limits, stopped).",
        [({}, snap.extra.get("http_input_rejected", 0))],
    )
    _retention(w, snap.extra.get("retention"))
    return w.families


def _retention(w: _Writer, figures: object) -> None:
    """The purge's figures (see ``portside.server.retention``), when the area is mounted."""
    if not isinstance(figures, dict):
        return
    w.counter(
        "portside_retention_runs", "Purges run by this process since it started.", [({}, figures.get("runs") or 0)]
    )
    w.one(
        "portside_retention_last_run_timestamp_seconds",
        "When this process's last purge finished (Unix time; 0 = none yet).",
        figures.get("last_run_at") or 0,
    )
    w.one(
        "portside_retention_last_run_duration_seconds",
        "How long this process's last purge took.",
        figures.get("last_run_seconds") or 0,
    )
    if figures.get("store_bytes") is not None:
        w.one("portside_retention_store_bytes", "Size of the store after the last purge.", figures["store_bytes"])
    purged = figures.get("purged") or {}
    w.counter(
        "portside_retention_purged_rows",
        "Rows purged by this process since it started, by kind.",
        [({"kind": k}, v.get("rows", 0)) for k, v in sorted(purged.items())],
    )
    w.counter(
        "portside_retention_purged_bytes",
        "Bytes of stored content (or workspace files) purged by this process since it started, by kind.",
        [({"kind": k}, v.get("bytes", 0)) for k, v in sorted(purged.items())],
    )
