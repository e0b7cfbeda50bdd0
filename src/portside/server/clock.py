"""UTC time helpers; every timestamp Portside stores or returns is timezone-aware UTC."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """Attach UTC to naive datetimes read back from SQLite."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def isoformat(value: datetime) -> str:
    """ISO-8601 with a ``Z`` suffix."""
    return as_utc(value).isoformat().replace("+00:00", "Z")
