"""Tables of the flow engine: flows, their immutable versions, executions and node runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portside.server.store.base import Base, TimestampMixin, UTCDateTime


class FlowRow(TimestampMixin, Base):
    """A flow: a name for a series of immutable versions."""

    __tablename__ = "flows"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(200), default="admin")
    source: Mapped[str] = mapped_column(String(500), default="api")


class FlowVersionRow(Base):
    """One saved definition of a flow; never modified after insert."""

    __tablename__ = "flow_versions"

    flow_id: Mapped[str] = mapped_column(String(100), ForeignKey("flows.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(50), default="1.0.0")
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    checksum: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(500), default="api")
    created_by: Mapped[str] = mapped_column(String(200), default="admin")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExecutionRow(TimestampMixin, Base):
    """One run of a flow version. ``lease_*`` columns say which engine is driving it."""

    __tablename__ = "flow_executions"
    __table_args__ = (
        Index("ix_flow_executions_status_created", "status", "created_at"),
        Index("ix_flow_executions_flow_id", "flow_id"),
        Index("ix_flow_executions_owner_created", "owner", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(100))
    flow_version: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(200), default="admin")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    input_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    output_data: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_token: Mapped[int] = mapped_column(Integer, default=0)
    resumes: Mapped[int] = mapped_column(Integer, default=0)


class NodeRunRow(Base):
    """The state of one node (or one map item, ``node[i]``) of one execution."""

    __tablename__ = "flow_node_runs"

    execution_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("flow_executions.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    input_data: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    output_data: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    attempt_log: Mapped[list[Any]] = mapped_column(JSON, default=list)
    external_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
