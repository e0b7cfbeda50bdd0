"""Tables of the MCP hub: registered servers and the audit log of tool calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portside.server.store.base import Base, TimestampMixin, UTCDateTime


class McpServerRow(TimestampMixin, Base):
    """A registered MCP server. ``env`` and ``headers`` are encrypted JSON (they often hold tokens)."""

    __tablename__ = "mcp_servers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    owner: Mapped[str] = mapped_column(String(200))
    transport: Mapped[str] = mapped_column(String(32))
    command: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    args: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cwd: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    env_keys: Mapped[list[Any]] = mapped_column(JSON, default=list)
    header_keys: Mapped[list[Any]] = mapped_column(JSON, default=list)
    secrets: Mapped[str | None] = mapped_column(Text, nullable=True)
    timeout_seconds: Mapped[float] = mapped_column(Float, default=30.0)
    description: Mapped[str] = mapped_column(Text, default="")
    desired_state: Mapped[str] = mapped_column(String(16), default="disconnected")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class McpToolCallRow(Base):
    """One tool call made through the hub (who, what, how it ended, how long it took)."""

    __tablename__ = "mcp_tool_calls"
    __table_args__ = (
        Index("ix_mcp_tool_calls_server_created", "server_id", "created_at"),
        Index("ix_mcp_tool_calls_owner_created", "owner", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    server_id: Mapped[str] = mapped_column(String(40))
    server_name: Mapped[str] = mapped_column(String(100))
    tool: Mapped[str] = mapped_column(String(300))
    owner: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_preview: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
