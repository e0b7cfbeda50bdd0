"""trust: tool reviews and analyses, secret metadata/audit/backend, symbiont agents and deployments

Revision ID: trust_0001
Revises: 0001_core
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from portside.server.store.base import UTCDateTime

revision: str = "trust_0001"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("trust",)
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "tool_reviews",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("submitted_by", sa.String(200), nullable=False),
        sa.Column("submitted_key_id", sa.String(64), nullable=False),
        sa.Column("priority", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("tool", sa.JSON(), nullable=False),
        sa.Column("tool_name", sa.String(300), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("analysis_id", sa.String(40), nullable=True),
        sa.Column("risk_score", sa.Integer(), nullable=True),
        sa.Column("recommendation", sa.String(32), nullable=True),
        sa.Column("critical_findings", sa.JSON(), nullable=False),
        sa.Column("analysis_completed_at", UTCDateTime(), nullable=True),
        sa.Column("estimated_completion", UTCDateTime(), nullable=True),
        sa.Column("review_started_at", UTCDateTime(), nullable=True),
        sa.Column("reviewer_id", sa.String(200), nullable=True),
        sa.Column("reviewer_key_id", sa.String(64), nullable=True),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("signature_algorithm", sa.String(64), nullable=True),
        sa.Column("signer_id", sa.String(200), nullable=True),
        sa.Column("key_fingerprint", sa.String(100), nullable=True),
        sa.Column("signed_at", UTCDateTime(), nullable=True),
        sa.Column("signed_by", sa.String(200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        *_timestamps(),
    )
    op.create_index("ix_tool_reviews_status", "tool_reviews", ["status"])
    op.create_index("ix_tool_reviews_submitted_by", "tool_reviews", ["submitted_by"])
    op.create_table(
        "tool_analyses",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "review_id",
            sa.String(40),
            sa.ForeignKey("tool_reviews.id", ondelete="CASCADE", name="fk_tool_analyses_review_id_tool_reviews"),
            nullable=False,
        ),
        sa.Column("risk_score", sa.Integer(), nullable=False),
        sa.Column("risk_level", sa.String(16), nullable=False),
        sa.Column("recommendation", sa.String(32), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("recommendations", sa.JSON(), nullable=False),
        sa.Column("scanners", sa.JSON(), nullable=False),
        sa.Column("schema_hash", sa.String(100), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_tool_analyses_review_id", "tool_analyses", ["review_id"])

    op.create_table(
        "secret_namespaces",
        sa.Column("agent_id", sa.String(128), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "secret_metadata",
        sa.Column("agent_id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        *_timestamps(),
    )
    op.create_table(
        "secret_audit",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("secret_name", sa.String(128), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("namespace_owner", sa.String(200), nullable=True),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
    )
    op.create_index("ix_secret_audit_agent_at", "secret_audit", ["agent_id", "at"])
    op.create_table(
        "secret_backend_config",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("backend_type", sa.String(32), nullable=False),
        sa.Column("config_enc", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )

    op.create_table(
        "symbiont_agents",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=False),
        sa.Column("tools", sa.JSON(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("temperature", sa.Float(), nullable=False),
        sa.Column("top_p", sa.Float(), nullable=False),
        sa.Column("max_tokens", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("dsl_source", sa.Text(), nullable=True),
        sa.Column("definition", sa.JSON(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
    )
    op.create_table(
        "agent_deployments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("config_overrides", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sandbox_id", sa.String(40), nullable=True),
        sa.Column("node_id", sa.String(200), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.Column("last_heartbeat_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("log_tail", sa.Text(), nullable=True),
        *_timestamps(),
    )
    op.create_index("ix_agent_deployments_agent", "agent_deployments", ["agent_id"])
    op.create_index("ix_agent_deployments_status", "agent_deployments", ["status"])


def downgrade() -> None:
    op.drop_table("agent_deployments")
    op.drop_table("symbiont_agents")
    op.drop_table("secret_backend_config")
    op.drop_table("secret_audit")
    op.drop_table("secret_metadata")
    op.drop_table("secret_namespaces")
    op.drop_table("tool_analyses")
    op.drop_table("tool_reviews")
