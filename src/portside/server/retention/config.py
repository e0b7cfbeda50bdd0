"""``PORTSIDE_RETENTION_*``: how long each kind of leftover is kept, and how often the purge runs."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The kinds of data a purge removes, in the order a pass handles them.
KINDS: tuple[str, ...] = (
    "expired_sandboxes",
    "execution_output",
    "finished_tasks",
    "deleted_records",
    "idempotency_records",
)


class RetentionSettings(BaseSettings):
    """Retention per kind, in hours (a negative value keeps that kind forever)."""

    model_config = SettingsConfigDict(env_prefix="PORTSIDE_RETENTION_", extra="ignore")

    enabled: bool = Field(default=True, description="Run the purge in the background (the admin route always works).")
    interval_seconds: float = Field(default=3600.0, gt=0, description="Seconds between background purges.")
    first_run_seconds: float = Field(default=60.0, ge=0, description="Seconds after start-up before the first one.")
    batch_size: int = Field(default=500, ge=1, le=10_000, description="Rows deleted per write transaction.")
    execution_output_hours: float = Field(
        default=24.0, description="Executions (code, output) of sandboxes deleted this long ago."
    )
    finished_tasks_hours: float = Field(
        default=168.0, description="Succeeded/failed/cancelled tasks (with their leases and progress) after finishing."
    )
    deleted_records_hours: float = Field(default=168.0, description="Records of deleted sandboxes and cargos.")
    idempotency_records_hours: float = Field(
        default=24.0, description="Idempotency-Key records: the window in which a retried POST is replayed."
    )
    expired_sandboxes_hours: float = Field(
        default=24.0, description="Sandboxes expired (TTL passed) this long ago are deleted with their workspace."
    )

    def keep(self, kind: str) -> timedelta | None:
        """How long ``kind`` is kept; ``None`` means forever."""
        hours = float(getattr(self, f"{kind}_hours"))
        return None if hours < 0 else timedelta(hours=hours)
