"""Persistence: SQLAlchemy 2 async models, sessions and Alembic migrations."""

from portside.server.store.base import Base, TimestampMixin, UTCDateTime
from portside.server.store.session import Database, lock_key

__all__ = ["Base", "Database", "TimestampMixin", "UTCDateTime", "lock_key"]
