"""flows: agent registry, flows, flow versions, executions, node runs

Revision ID: flows_0001
Revises: 0001_core
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from portside.server.store.base import UTCDateTime

revision: str = "flows_0001"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("flows",)
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.String(2000), nullable=True),
        sa.Column("capability", sa.String(200), nullable=True),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("configuration", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        *_timestamps(),
    )
    op.create_table(
        "flows",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        *_timestamps(),
    )
    op.create_table(
        "flow_versions",
        sa.Column("flow_id", sa.String(100), sa.ForeignKey("flows.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("label", sa.String(50), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "flow_executions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("flow_id", sa.String(100), nullable=False),
        sa.Column("flow_version", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input_data", sa.JSON(), nullable=False),
        sa.Column("output_data", sa.JSON(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("deadline_at", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("lease_token", sa.Integer(), nullable=False),
        sa.Column("resumes", sa.Integer(), nullable=False),
        *_timestamps(),
    )
    op.create_index("ix_flow_executions_status_created", "flow_executions", ["status", "created_at"])
    op.create_index("ix_flow_executions_flow_id", "flow_executions", ["flow_id"])
    op.create_index("ix_flow_executions_owner_created", "flow_executions", ["owner", "created_at"])
    op.create_table(
        "flow_node_runs",
        sa.Column(
            "execution_id",
            sa.String(40),
            sa.ForeignKey("flow_executions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("node_id", sa.String(120), primary_key=True),
        sa.Column("parent_id", sa.String(120), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("input_data", sa.JSON(), nullable=True),
        sa.Column("output_data", sa.JSON(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("attempt_log", sa.JSON(), nullable=False),
        sa.Column("external_ref", sa.String(200), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("flow_node_runs")
    op.drop_index("ix_flow_executions_owner_created", table_name="flow_executions")
    op.drop_index("ix_flow_executions_flow_id", table_name="flow_executions")
    op.drop_index("ix_flow_executions_status_created", table_name="flow_executions")
    op.drop_table("flow_executions")
    op.drop_table("flow_versions")
    op.drop_table("flows")
    op.drop_table("agents")
