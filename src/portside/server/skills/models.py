"""Tables of the skills area: payloads, candidates, evaluations, benchmarks, releases and runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from portside.server.store.base import Base, TimestampMixin, UTCDateTime


class SkillPayloadRow(Base):
    """An immutable, content-addressed skill body (``payload_ref`` = ``sha256-<hex>``)."""

    __tablename__ = "skill_payloads"

    ref: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[Any] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SkillCandidateRow(TimestampMixin, Base):
    __tablename__ = "skill_candidates"
    __table_args__ = (Index("ix_skill_candidates_key_status", "skill_key", "status"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    skill_key: Mapped[str] = mapped_column(String(200))
    scenario_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payload_ref: Mapped[str | None] = mapped_column(String(500), nullable=True)
    skill_type: Mapped[str] = mapped_column(String(32), default="code")
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    usage_notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    preconditions: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    postconditions: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    source_execution_ids: Mapped[list[Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32))
    latest_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    latest_pass: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    last_evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    promotion_release_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deleted_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    delete_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class SkillEvaluationRow(Base):
    __tablename__ = "skill_evaluations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    candidate_id: Mapped[str] = mapped_column(String(40), index=True)
    benchmark_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    report: Mapped[str | None] = mapped_column(Text, nullable=True)
    evaluated_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SkillBenchmarkRow(Base):
    """A benchmark: cases of input and expected output, and the score needed to pass."""

    __tablename__ = "skill_benchmarks"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    skill_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    cases: Mapped[list[Any]] = mapped_column(JSON)
    pass_threshold: Mapped[float] = mapped_column(Float, default=1.0)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SkillReleaseRow(Base):
    __tablename__ = "skill_releases"
    __table_args__ = (
        UniqueConstraint("skill_key", "version", name="uq_skill_releases_key_version"),
        # At most one active release per skill (as Bay), enforced by the database itself. A canary
        # split is carried by the active canary release (``canary_share`` + ``fallback_release_id``).
        Index(
            "uq_skill_releases_active_skill",
            "skill_key",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    skill_key: Mapped[str] = mapped_column(String(200))
    candidate_id: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(Boolean)
    release_mode: Mapped[str] = mapped_column(String(16), default="manual")
    promoted_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    promoted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rollback_of: Mapped[str | None] = mapped_column(String(40), nullable=True)
    previous_release_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    upgrade_of_release_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    upgrade_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    change_summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Canary split: the share of runs the (active) canary serves; the rest go to the fallback stable release.
    canary_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    fallback_release_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deleted_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    delete_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class SkillRunRow(Base):
    """One use of a release: the evidence behind its health."""

    __tablename__ = "skill_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    release_id: Mapped[str] = mapped_column(String(40), index=True)
    skill_key: Mapped[str] = mapped_column(String(200), index=True)
    sandbox_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    execution_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    success: Mapped[bool] = mapped_column(Boolean)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
