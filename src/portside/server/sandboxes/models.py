"""Tables of the sandbox area: sandboxes, cargo volumes and the execution history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portside.server.store.base import Base, TimestampMixin, UTCDateTime


class CargoRow(TimestampMixin, Base):
    """A persistent volume: a directory under ``<data_dir>/cargos/<id>`` mounted at ``/workspace``."""

    __tablename__ = "cargos"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    managed: Mapped[bool] = mapped_column(Boolean, default=False)
    managed_by_sandbox_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    backend: Mapped[str] = mapped_column(String(32), default="local")
    size_limit_mb: Mapped[int] = mapped_column(Integer)
    last_accessed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SandboxRow(TimestampMixin, Base):
    """A sandbox record; its runtime (kernel, processes) lives in the server process that runs it."""

    __tablename__ = "sandboxes"
    __table_args__ = (Index("ix_sandboxes_owner_status", "owner", "status"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    profile: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    cargo_id: Mapped[str] = mapped_column(String(40), ForeignKey("cargos.id"))
    ttl_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    idle_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    node_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ExecutionRow(Base):
    """One recorded execution (python, shell or browser): the evidence layer for skills."""

    __tablename__ = "executions"
    __table_args__ = (Index("ix_executions_sandbox_created", "sandbox_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sandbox_id: Mapped[str] = mapped_column(String(40), index=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    session_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    exec_type: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(Text, default="")
    success: Mapped[bool] = mapped_column(Boolean)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    execution_time_ms: Mapped[int] = mapped_column(Integer, default=0)
    output: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    payload_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    tags: Mapped[str | None] = mapped_column(Text, nullable=True)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
