"""Tables of the tool-review area: review sessions and their analyses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portside.server.store.base import Base, TimestampMixin, UTCDateTime


class ToolReviewRow(TimestampMixin, Base):
    """One review session: the tool, where it is in the workflow, the decision and the signature."""

    __tablename__ = "tool_reviews"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    submitted_by: Mapped[str] = mapped_column(String(200))
    submitted_key_id: Mapped[str] = mapped_column(String(64))
    priority: Mapped[str] = mapped_column(String(32), default="normal")
    status: Mapped[str] = mapped_column(String(32))
    tool: Mapped[dict[str, Any]] = mapped_column(JSON)
    tool_name: Mapped[str] = mapped_column(String(300))
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    analysis_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    risk_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recommendation: Mapped[str | None] = mapped_column(String(32), nullable=True)
    critical_findings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    analysis_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    estimated_completion: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    review_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reviewer_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reviewer_key_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(32), nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)
    signature_algorithm: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signer_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    key_fingerprint: Mapped[str | None] = mapped_column(String(100), nullable=True)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    signed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_tool_reviews_status", "status"),
        Index("ix_tool_reviews_submitted_by", "submitted_by"),
    )


class ToolAnalysisRow(Base):
    """The automated analysis of one review session."""

    __tablename__ = "tool_analyses"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    review_id: Mapped[str] = mapped_column(String(40), ForeignKey("tool_reviews.id", ondelete="CASCADE"), index=True)
    risk_score: Mapped[int] = mapped_column(Integer)
    risk_level: Mapped[str] = mapped_column(String(16))
    recommendation: Mapped[str] = mapped_column(String(32))
    findings: Mapped[list[Any]] = mapped_column(JSON)
    recommendations: Mapped[list[Any]] = mapped_column(JSON)
    scanners: Mapped[list[Any]] = mapped_column(JSON)
    schema_hash: Mapped[str] = mapped_column(String(100))
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime())
