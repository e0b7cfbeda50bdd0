"""Models of the admin routes."""

from __future__ import annotations

from portside.types.common import Model


class Purged(Model):
    """Rows (every table of the kind) and bytes of stored content or workspace files purged."""

    rows: int = 0
    bytes: int = 0


class StoreSize(Model):
    bytes_before: int | None = None
    bytes_after: int | None = None


class GcReport(Model):
    """What ``POST /v1/admin/gc`` purged, per kind (``execution_output``, ``finished_tasks`` ...)."""

    started_at: str
    finished_at: str | None = None
    duration_seconds: float = 0.0
    skipped: bool = False
    purged: dict[str, Purged] = {}
    rows: int = 0
    bytes: int = 0
    store: StoreSize = StoreSize()
    errors: dict[str, str] = {}
