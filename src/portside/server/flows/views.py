"""Read models of flows and executions, as services return them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from portside.server.flows.models import ExecutionRow, FlowRow, FlowVersionRow, NodeRunRow
from portside.server.flows.schema import TERMINAL_EXECUTION, FlowDefinition


@dataclass(frozen=True)
class FlowView:
    """A flow at one version."""

    flow_id: str
    name: str
    description: str
    revision: int
    current_revision: int
    label: str
    definition: FlowDefinition
    checksum: str
    source: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    version_created_at: datetime

    @property
    def nodes(self) -> list[dict[str, Any]]:
        return [n.model_dump(mode="json", exclude_none=True) for n in self.definition.nodes]


def flow_view(flow: FlowRow, version: FlowVersionRow) -> FlowView:
    return FlowView(
        flow_id=flow.id,
        name=flow.name,
        description=flow.description,
        revision=version.version,
        current_revision=flow.current_version,
        label=version.label,
        definition=FlowDefinition.model_validate(version.definition),
        checksum=version.checksum,
        source=version.source,
        created_by=flow.created_by,
        created_at=flow.created_at,
        updated_at=flow.updated_at,
        version_created_at=version.created_at,
    )


@dataclass(frozen=True)
class NodeRunView:
    """The state of one node of one execution."""

    node_id: str
    parent_id: str | None
    kind: str
    status: str
    attempts: int
    input_data: Any
    output_data: Any
    error_message: str | None
    error: dict[str, Any] | None
    attempt_log: list[Any]
    external_ref: str | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: float | None
    updated_at: datetime


def node_view(row: NodeRunRow) -> NodeRunView:
    return NodeRunView(
        node_id=row.node_id,
        parent_id=row.parent_id,
        kind=row.kind,
        status=row.status,
        attempts=row.attempts,
        input_data=row.input_data,
        output_data=row.output_data,
        error_message=row.error_message,
        error=row.error,
        attempt_log=list(row.attempt_log or []),
        external_ref=row.external_ref,
        started_at=row.started_at,
        completed_at=row.completed_at,
        duration_ms=row.duration_ms,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True)
class ExecutionView:
    """An execution, with its node runs when asked for."""

    execution_id: str
    flow_id: str
    flow_version: int
    owner: str
    status: str
    input_data: dict[str, Any]
    output_data: Any
    error_message: str | None
    error: dict[str, Any] | None
    metadata: dict[str, Any]
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    resumes: int
    nodes: list[NodeRunView] = field(default_factory=list)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_EXECUTION

    @property
    def duration_ms(self) -> float | None:
        if self.completed_at is None:
            return None
        return round((self.completed_at - self.created_at).total_seconds() * 1000, 3)


def execution_view(row: ExecutionRow, nodes: list[NodeRunRow] | None = None) -> ExecutionView:
    return ExecutionView(
        execution_id=row.id,
        flow_id=row.flow_id,
        flow_version=row.flow_version,
        owner=row.owner,
        status=row.status,
        input_data=dict(row.input_data or {}),
        output_data=row.output_data,
        error_message=row.error_message,
        error=row.error,
        metadata=dict(row.meta or {}),
        cancel_requested=row.cancel_requested,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
        resumes=row.resumes,
        nodes=[node_view(n) for n in (nodes or [])],
    )
