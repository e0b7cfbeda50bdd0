"""Typed values the workers service returns and the frames it queues for worker streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from portside.server.clock import isoformat
from portside.server.workers.capabilities import CapabilitySpec

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
TASK_STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
NACK_KINDS = ("retryable", "terminal", "schema-mismatch", "cancelled")


def _iso(value: datetime | None) -> str | None:
    return isoformat(value) if value is not None else None


@dataclass(frozen=True)
class Task:
    """A task as stored in the result store."""

    id: str
    capability: str
    status: str
    owner: str
    input: Any
    output: Any = None
    error: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    attempt: int = 0
    max_attempts: int = 1
    on_behalf_of: str | None = None
    idempotency_key: str | None = None
    timeout_s: float | None = None
    deadline_at: datetime | None = None
    worker_id: str | None = None
    lease_id: str | None = None
    lease_expires_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    workflow_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def done(self) -> bool:
        """True once the task succeeded, failed or was cancelled."""
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        """The native wire shape (ISO-8601 UTC timestamps)."""
        return {
            "id": self.id,
            "object": "task",
            "capability": self.capability,
            "status": self.status,
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "progress": self.progress,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "owner": self.owner,
            "on_behalf_of": self.on_behalf_of,
            "idempotency_key": self.idempotency_key,
            "timeout_s": self.timeout_s,
            "deadline_at": _iso(self.deadline_at),
            "worker_id": self.worker_id,
            "lease_id": self.lease_id,
            "lease_expires_at": _iso(self.lease_expires_at),
            "metadata": self.metadata,
            "workflow_id": self.workflow_id,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }


@dataclass(frozen=True)
class Lease:
    """One delivery of a task to a worker."""

    id: str
    task_id: str
    worker_id: str
    capability: str
    attempt: int
    state: str
    issued_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None
    outcome: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "lease",
            "task_id": self.task_id,
            "worker_id": self.worker_id,
            "capability": self.capability,
            "attempt": self.attempt,
            "state": self.state,
            "issued_at": _iso(self.issued_at),
            "expires_at": _iso(self.expires_at),
            "ended_at": _iso(self.ended_at),
            "outcome": self.outcome,
        }


@dataclass(frozen=True)
class ProgressEntry:
    """A progress report."""

    task_id: str
    lease_id: str
    percent: float | None
    message: str | None
    data: Any
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "lease_id": self.lease_id,
            "percent": self.percent,
            "message": self.message,
            "data": self.data,
            "at": _iso(self.at),
        }


@dataclass(frozen=True)
class WorkerInfo:
    """A worker as listed by ``/v1/workers``."""

    id: str
    owner: str
    kind: str
    protocol_version: str
    capabilities: list[dict[str, Any]]
    labels: dict[str, Any]
    status: str
    session_id: str | None
    registered_at: datetime | None
    connected_at: datetime | None
    disconnected_at: datetime | None
    last_heartbeat_at: datetime | None
    leases: list[Lease] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "worker",
            "owner": self.owner,
            "kind": self.kind,
            "protocol_version": self.protocol_version,
            "capabilities": self.capabilities,
            "labels": self.labels,
            "status": self.status,
            "session_id": self.session_id,
            "registered_at": _iso(self.registered_at),
            "connected_at": _iso(self.connected_at),
            "disconnected_at": _iso(self.disconnected_at),
            "last_heartbeat_at": _iso(self.last_heartbeat_at),
            "active_leases": len(self.leases),
            "leases": [lease.to_dict() for lease in self.leases],
        }


@dataclass(frozen=True)
class CapabilityDef:
    """A capability type's definition: schemas and policy."""

    type: str
    owner: str
    description: str = ""
    input_schema: Any = None
    output_schema: Any = None
    max_attempts: int | None = None
    lease_ttl_ms: int | None = None
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "object": "capability",
            "owner": self.owner,
            "description": self.description,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
            "max_attempts": self.max_attempts,
            "lease_ttl_ms": self.lease_ttl_ms,
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class RegisterResult:
    """What a worker learns when it registers."""

    worker_id: str
    session_id: str
    capabilities: list[CapabilitySpec]
    accepted_at: datetime
    protocol_version: str
    lease_ttl_ms: int
    heartbeat_interval_ms: int


@dataclass(frozen=True)
class ResultOutcome:
    """The answer to one ack or nack."""

    lease_id: str
    accepted: bool
    task_id: str | None = None
    task_status: str | None = None
    duplicate: bool = False
    error: Exception | None = None


# -- frames queued for a worker's event stream ------------------------------------------------


@dataclass(frozen=True)
class RegisteredFrame:
    session_id: str
    capabilities: list[CapabilitySpec]
    accepted_at: datetime


@dataclass(frozen=True)
class LeaseFrame:
    lease_id: str
    expires_at: datetime
    task_id: str
    workflow_id: str | None
    capability: str
    on_behalf_of: str | None
    input: Any
    attempt: int
    metadata: dict[str, Any]
    input_schema: Any
    output_schema: Any


@dataclass(frozen=True)
class CancelFrame:
    lease_id: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class DisconnectFrame:
    reason: str
    code: str | None
    reconnectable: bool


Frame = RegisteredFrame | LeaseFrame | CancelFrame | DisconnectFrame
