"""Table handles and row -> domain conversions shared by the service and the broker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table

from portside.server.clock import as_utc
from portside.server.workers.domain import Lease, ProgressEntry, Task
from portside.server.workers.models import LeaseRow, TaskProgressRow, TaskRow, WorkerRow

TASKS: Table = TaskRow.__table__  # type: ignore[assignment]
LEASES: Table = LeaseRow.__table__  # type: ignore[assignment]
WORKERS: Table = WorkerRow.__table__  # type: ignore[assignment]
PROGRESS: Table = TaskProgressRow.__table__  # type: ignore[assignment]


def _dt(value: Any) -> Any:
    return as_utc(value) if value is not None else None


def task_from(m: Mapping[Any, Any]) -> Task:
    """A ``Task`` from a row mapping of the ``tasks`` table."""
    return Task(
        id=m["id"],
        capability=m["capability"],
        status=m["status"],
        owner=m["owner"],
        input=m["input"],
        output=m["output"],
        error=m["error"],
        progress=m["progress"],
        attempt=m["attempt"],
        max_attempts=m["max_attempts"],
        on_behalf_of=m["on_behalf_of"],
        idempotency_key=m["idempotency_key"],
        timeout_s=m["timeout_s"],
        deadline_at=_dt(m["deadline_at"]),
        worker_id=m["worker_id"],
        lease_id=m["lease_id"],
        lease_expires_at=_dt(m["lease_expires_at"]),
        metadata=m["metadata"] or {},
        workflow_id=m["workflow_id"],
        created_at=_dt(m["created_at"]),
        updated_at=_dt(m["updated_at"]),
        started_at=_dt(m["started_at"]),
        finished_at=_dt(m["finished_at"]),
    )


def lease_from(m: Mapping[Any, Any]) -> Lease:
    return Lease(
        id=m["id"],
        task_id=m["task_id"],
        worker_id=m["worker_id"],
        capability=m["capability"],
        attempt=m["attempt"],
        state=m["state"],
        issued_at=_dt(m["issued_at"]),
        expires_at=_dt(m["expires_at"]),
        ended_at=_dt(m["ended_at"]),
        outcome=m["outcome"],
    )


def progress_from(m: Mapping[Any, Any]) -> ProgressEntry:
    return ProgressEntry(
        task_id=m["task_id"],
        lease_id=m["lease_id"],
        percent=m["percent"],
        message=m["message"],
        data=m["data"],
        at=_dt(m["at"]),
    )
