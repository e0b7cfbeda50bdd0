"""Task, worker, lease and capability models of the workers area."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from portside.types.common import Model, Page

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class TaskProgress(Model):
    """A progress report from the worker running a task."""

    task_id: str | None = None
    lease_id: str | None = None
    percent: float | None = None
    message: str | None = None
    data: Any = None
    at: str | None = None


class Task(Model):
    """A task for a typed capability, and its result once done."""

    id: str
    capability: str
    status: str
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    attempt: int = 0
    max_attempts: int = 1
    owner: str | None = None
    on_behalf_of: str | None = None
    idempotency_key: str | None = None
    timeout_s: float | None = None
    deadline_at: str | None = None
    worker_id: str | None = None
    lease_id: str | None = None
    lease_expires_at: str | None = None
    metadata: dict[str, Any] = {}
    workflow_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def done(self) -> bool:
        """True once the task succeeded, failed or was cancelled."""
        return self.status in TERMINAL_STATUSES


class Lease(Model):
    """One delivery (attempt) of a task to a worker."""

    id: str
    task_id: str
    worker_id: str
    capability: str
    attempt: int
    state: str
    issued_at: str | None = None
    expires_at: str | None = None
    ended_at: str | None = None
    outcome: dict[str, Any] | None = None


class WorkerInfo(Model):
    """A registered worker (Portside Worker or holokai neuron)."""

    id: str
    owner: str
    kind: str
    protocol_version: str
    capabilities: list[dict[str, Any]] = []
    labels: dict[str, Any] = {}
    status: str
    session_id: str | None = None
    registered_at: str | None = None
    connected_at: str | None = None
    disconnected_at: str | None = None
    last_heartbeat_at: str | None = None
    active_leases: int = 0
    leases: list[Lease] = []


class CapabilityDefinition(Model):
    """A capability type's JSON Schemas and retry policy."""

    type: str
    owner: str | None = None
    description: str = ""
    input_schema: Any = None
    output_schema: Any = None
    max_attempts: int | None = None
    lease_ttl_ms: int | None = None
    updated_at: str | None = None


TaskPage = Page[Task]
TaskProgressPage = Page[TaskProgress]
LeasePage = Page[Lease]
WorkerPage = Page[WorkerInfo]
CapabilityPage = Page[CapabilityDefinition]


class WorkerRegistration(Model):
    """The reply to a worker's ``register``: its session and the timings it must keep."""

    worker_id: str = Field(alias="workerId")
    session_id: str = Field(alias="sessionId")
    protocol_version: str = Field(alias="protocolVersion")
    capabilities: list[dict[str, Any]] = []
    accepted_at: str = Field(alias="acceptedAt")
    lease_ttl_ms: int = Field(alias="leaseTtlMs")
    heartbeat_interval_ms: int = Field(alias="heartbeatIntervalMs")


class HeartbeatReply(Model):
    """Leases the heartbeat renewed, leases that ended (stop working on them), the server's clock."""

    renewed: list[str] = []
    ended: list[str] = []
    server_time: str = Field(alias="serverTime")


class ResultError(Model):
    """Why a reported result was not accepted."""

    code: str
    message: str
    status: int
    details: dict[str, Any] = {}


class ResultOutcome(Model):
    """What became of one reported ``ack``/``nack``."""

    lease_id: str = Field(alias="leaseId")
    accepted: bool
    task_id: str | None = Field(default=None, alias="taskId")
    status: str | None = None
    duplicate: bool = False
    error: ResultError | None = None


class ResultsReply(Model):
    """The reply to ``POST /v1/workers/{id}/results``, one outcome per reported result."""

    results: list[ResultOutcome]
