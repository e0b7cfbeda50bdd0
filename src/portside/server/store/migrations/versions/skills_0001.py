"""skills: payloads, candidates, evaluations, benchmarks, releases, runs

Revision ID: skills_0001
Revises: sandboxes_0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from portside.server.store.base import UTCDateTime

revision: str = "skills_0001"
down_revision: str | Sequence[str] | None = "sandboxes_0001"
branch_labels: str | Sequence[str] | None = ("skills",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "skill_payloads",
        sa.Column("ref", sa.String(80), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "skill_candidates",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("skill_key", sa.String(200), nullable=False),
        sa.Column("scenario_key", sa.String(200), nullable=True),
        sa.Column("payload_ref", sa.String(500), nullable=True),
        sa.Column("skill_type", sa.String(32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("usage_notes", sa.Text(), nullable=True),
        sa.Column("preconditions", sa.JSON(), nullable=True),
        sa.Column("postconditions", sa.JSON(), nullable=True),
        sa.Column("source_execution_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("latest_score", sa.Float(), nullable=True),
        sa.Column("latest_pass", sa.Boolean(), nullable=True),
        sa.Column("last_evaluated_at", UTCDateTime(), nullable=True),
        sa.Column("promotion_release_id", sa.String(40), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("deleted_by", sa.String(200), nullable=True),
        sa.Column("delete_reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_skill_candidates_key_status", "skill_candidates", ["skill_key", "status"])
    op.create_table(
        "skill_evaluations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("candidate_id", sa.String(40), nullable=False),
        sa.Column("benchmark_id", sa.String(200), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("evaluated_by", sa.String(200), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_skill_evaluations_candidate_id", "skill_evaluations", ["candidate_id"])
    op.create_table(
        "skill_benchmarks",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("skill_key", sa.String(200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("cases", sa.JSON(), nullable=False),
        sa.Column("pass_threshold", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "skill_releases",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("skill_key", sa.String(200), nullable=False),
        sa.Column("candidate_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("release_mode", sa.String(16), nullable=False),
        sa.Column("promoted_by", sa.String(200), nullable=True),
        sa.Column("promoted_at", UTCDateTime(), nullable=False),
        sa.Column("rollback_of", sa.String(40), nullable=True),
        sa.Column("previous_release_id", sa.String(40), nullable=True),
        sa.Column("upgrade_of_release_id", sa.String(40), nullable=True),
        sa.Column("upgrade_reason", sa.Text(), nullable=True),
        sa.Column("change_summary", sa.Text(), nullable=True),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("deleted_by", sa.String(200), nullable=True),
        sa.Column("delete_reason", sa.Text(), nullable=True),
        sa.UniqueConstraint("skill_key", "version", name="uq_skill_releases_key_version"),
    )
    op.create_index(
        "uq_skill_releases_active_stage",
        "skill_releases",
        ["skill_key", "stage"],
        unique=True,
        sqlite_where=sa.text("is_active"),
        postgresql_where=sa.text("is_active"),
    )
    op.create_table(
        "skill_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("release_id", sa.String(40), nullable=False),
        sa.Column("skill_key", sa.String(200), nullable=False),
        sa.Column("sandbox_id", sa.String(40), nullable=True),
        sa.Column("execution_id", sa.String(40), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_skill_runs_release_id", "skill_runs", ["release_id"])
    op.create_index("ix_skill_runs_skill_key", "skill_runs", ["skill_key"])
    op.create_index("ix_skill_runs_created_at", "skill_runs", ["created_at"])


def downgrade() -> None:
    for table in (
        "skill_runs",
        "skill_releases",
        "skill_benchmarks",
        "skill_evaluations",
        "skill_candidates",
        "skill_payloads",
    ):
        op.drop_table(table)
