"""Flow, flow version, execution and node-run models."""

from __future__ import annotations

from typing import Any

from portside.types.common import Model

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


class Flow(Model):
    """A flow definition at one revision. ``nodes`` keep the definition's own shape."""

    flow_id: str
    name: str = ""
    description: str = ""
    version: str = "1.0.0"
    revision: int = 1
    current_revision: int = 1
    nodes: list[dict[str, Any]] = []
    entry_point: str | None = None
    exit_points: list[str] = []
    metadata: dict[str, Any] = {}
    checksum: str | None = None
    source: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    changed: bool | None = None


class FlowVersion(Model):
    """One saved revision of a flow."""

    flow_id: str
    revision: int
    version: str
    checksum: str
    source: str
    created_at: str | None = None
    current: bool = False


class NodeRun(Model):
    """The state of one node (or map item ``node[i]``) of an execution."""

    node_id: str
    parent_id: str | None = None
    kind: str
    status: str
    attempts: int = 0
    input_data: Any = None
    output_data: Any = None
    error_message: str | None = None
    error: dict[str, Any] | None = None
    attempt_log: list[dict[str, Any]] = []
    external_ref: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    execution_time_ms: float | None = None


class Execution(Model):
    """One run of a flow: ``pending`` -> ``running`` -> ``completed`` | ``failed`` | ``cancelled``."""

    execution_id: str
    flow_id: str
    flow_revision: int | None = None
    status: str
    input_data: dict[str, Any] = {}
    output_data: Any = None
    error_message: str | None = None
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] = {}
    cancel_requested: bool = False
    resumes: int = 0
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: float | None = None
    nodes: list[NodeRun] = []

    @property
    def id(self) -> str:
        return self.execution_id

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def node(self, node_id: str) -> NodeRun:
        """The run of ``node_id`` (KeyError if the execution has no such node)."""
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(node_id)


class ExecutionEvent(Model):
    """A server-sent event: ``event`` is ``node`` or ``execution``; ``data`` its payload."""

    event: str
    data: dict[str, Any] = {}
