"""Tables of HTTP inputs: the endpoints and the audit log of the requests they dispatched."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portside.server.store.base import Base, TimestampMixin, UTCDateTime


class HttpInputRow(TimestampMixin, Base):
    """A webhook endpoint. ``secrets`` is encrypted JSON (HMAC secret, expected auth header)."""

    __tablename__ = "http_inputs"
    __table_args__ = (Index("ix_http_inputs_owner", "owner"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200), default="")
    target: Mapped[str] = mapped_column(String(300))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secrets: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    requests_processed: Mapped[int] = mapped_column(Integer, default=0)
    last_request_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class HttpInputRequestRow(Base):
    """One dispatched request (after the endpoint's checks passed) and how it ended."""

    __tablename__ = "http_input_requests"
    __table_args__ = (Index("ix_http_input_requests_input_received", "input_id", "received_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    input_id: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2000), default="")
    remote_addr: Mapped[str | None] = mapped_column(String(100), nullable=True)
    body_bytes: Mapped[int] = mapped_column(Integer, default=0)
    target: Mapped[str] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int] = mapped_column(Integer)
    ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
