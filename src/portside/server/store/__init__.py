"""Persistence: SQLAlchemy 2 async models, sessions and Alembic migrations."""

from portside.server.store.base import Base, TimestampMixin, UTCDateTime
from portside.server.store.session import Database

__all__ = ["Base", "Database", "TimestampMixin", "UTCDateTime"]
