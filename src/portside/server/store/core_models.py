"""Tables of the core: API keys and idempotency records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portside.server.store.base import Base, TimestampMixin, UTCDateTime


class ApiKeyRow(TimestampMixin, Base):
    """An API key; only its SHA-256 hash is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    owner: Mapped[str] = mapped_column(String(200), default="admin")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class IdempotencyRow(Base):
    """A stored response for an ``Idempotency-Key`` request."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_scope_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str] = mapped_column(Text, default="")
    #: The server instance running the request while ``pending`` (see docs/security/idempotency.md).
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: A pending row whose lease has passed belongs to a dead instance and may be taken over.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: ``"table:pk"`` of rows inserted by committed transactions of an earlier attempt.
    effects: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
