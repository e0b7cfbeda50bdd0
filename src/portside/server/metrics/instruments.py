"""Process counters and histograms (``prometheus_client``), updated on the hot paths.

They live in their own registry, :data:`REGISTRY`, rendered by ``/metrics/prometheus`` next to the
figures read from the store at scrape time. Labels are bounded: route *templates* (never raw
paths), methods, status codes, driver, profile, kind, outcome and tool names.

Several server processes on one machine (e.g. behind a process manager) share their counters when
``PROMETHEUS_MULTIPROC_DIR`` is set before start-up: ``prometheus_client`` then keeps the values in
files there and the scrape merges them (see docs/metrics.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

disable_created_metrics()  # type: ignore[no-untyped-call] # no ``*_created`` series: Prometheus does not use them from the text format
REGISTRY = CollectorRegistry(auto_describe=True)
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

#: seconds: from 5 ms (a cached read) to 5 min (a long exec)
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

HTTP_REQUESTS = Counter(
    "portside_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ("method", "route", "status"),
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "portside_http_request_duration_seconds",
    "Time to answer an HTTP request (to the end of the response), by route template, method and status.",
    ("method", "route", "status"),
    buckets=_LATENCY,
    registry=REGISTRY,
)
SANDBOX_CREATES = Counter(
    "portside_sandbox_creates",
    "Sandbox creations, by driver, profile and outcome (ok/error).",
    ("driver", "profile", "outcome"),
    registry=REGISTRY,
)
SANDBOX_CREATE_DURATION = Histogram(
    "portside_sandbox_create_duration_seconds",
    "Time to create a sandbox (runtime start and records), by driver and profile.",
    ("driver", "profile"),
    buckets=_LATENCY,
    registry=REGISTRY,
)
SANDBOX_EXECS = Counter(
    "portside_sandbox_execs",
    "Code executions in sandboxes, by driver, profile, kind (python/shell) and outcome (ok/failed/timeout/error).",
    ("driver", "profile", "kind", "outcome"),
    registry=REGISTRY,
)
SANDBOX_EXEC_DURATION = Histogram(
    "portside_sandbox_exec_duration_seconds",
    "Time of a code execution in a sandbox, by driver, profile and kind.",
    ("driver", "profile", "kind"),
    buckets=_LATENCY,
    registry=REGISTRY,
)
TASKS_SUBMITTED = Counter(
    "portside_tasks_submitted", "Worker tasks submitted to this process (new tasks only).", registry=REGISTRY
)
TASK_RESULTS = Counter(
    "portside_task_results",
    "Worker results (acks and nacks) applied by this process, by the task's status after it.",
    ("status",),
    registry=REGISTRY,
)
TASK_DISPATCH_LATENCY = Histogram(
    "portside_task_dispatch_latency_seconds",
    "Time from a task becoming available (submitted, or due again after a retry) to its lease.",
    buckets=(0.001, 0.0025, *_LATENCY),
    registry=REGISTRY,
)
FLOW_EXECUTIONS = Counter(
    "portside_flow_executions_finished",
    "Flow executions finished by this process, by final status.",
    ("status",),
    registry=REGISTRY,
)
FLOW_EXECUTION_DURATION = Histogram(
    "portside_flow_execution_duration_seconds",
    "Time a flow execution ran in this process (to its end, or to a hand-over), by final status.",
    ("status",),
    buckets=_LATENCY,
    registry=REGISTRY,
)
FLOW_NODE_DURATION = Histogram(
    "portside_flow_node_duration_seconds",
    "Time of one attempt of a flow node, by node type and outcome (ok/error).",
    ("type", "outcome"),
    buckets=_LATENCY,
    registry=REGISTRY,
)
MCP_TOOL_CALLS = Counter(
    "portside_mcp_server_tool_calls",
    "Tool calls served by Portside's own MCP server, by tool and outcome (ok/error).",
    ("tool", "outcome"),
    registry=REGISTRY,
)
MCP_TOOL_DURATION = Histogram(
    "portside_mcp_server_tool_call_duration_seconds",
    "Time to serve a tool call of Portside's own MCP server, by tool.",
    ("tool",),
    buckets=_LATENCY,
    registry=REGISTRY,
)


@contextmanager
def timed(histogram: Histogram, counter: Counter, *labels: str, ok: str = "ok", error: str = "error") -> Iterator[None]:
    """Observe the block's duration on ``histogram`` and count it on ``counter`` with an outcome label."""
    started = time.perf_counter()
    outcome = error
    try:
        yield
        outcome = ok
    finally:
        histogram.labels(*labels).observe(time.perf_counter() - started)
        counter.labels(*labels, outcome).inc()
