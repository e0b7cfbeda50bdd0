"""sandboxes: sandboxes, cargos, executions

Revision ID: sandboxes_0001
Revises: 0001_core
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from portside.server.store.base import UTCDateTime

revision: str = "sandboxes_0001"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("sandboxes",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cargos",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("managed", sa.Boolean(), nullable=False),
        sa.Column("managed_by_sandbox_id", sa.String(40), nullable=True),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("size_limit_mb", sa.Integer(), nullable=False),
        sa.Column("last_accessed_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_cargos_owner", "cargos", ["owner"])
    op.create_table(
        "sandboxes",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column(
            "cargo_id", sa.String(40), sa.ForeignKey("cargos.id", name="fk_sandboxes_cargo_id_cargos"), nullable=False
        ),
        sa.Column("ttl_seconds", sa.Integer(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("idle_expires_at", UTCDateTime(), nullable=True),
        sa.Column("last_active_at", UTCDateTime(), nullable=True),
        sa.Column("session_id", sa.String(40), nullable=True),
        sa.Column("node_id", sa.String(64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_sandboxes_owner_status", "sandboxes", ["owner", "status"])
    op.create_index("ix_sandboxes_expires_at", "sandboxes", ["expires_at"])
    op.create_table(
        "executions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("sandbox_id", sa.String(40), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("session_id", sa.String(40), nullable=True),
        sa.Column("exec_type", sa.String(16), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("execution_time_ms", sa.Integer(), nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("payload_ref", sa.String(200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_executions_sandbox_id", "executions", ["sandbox_id"])
    op.create_index("ix_executions_owner", "executions", ["owner"])
    op.create_index("ix_executions_sandbox_created", "executions", ["sandbox_id", "created_at"])


def downgrade() -> None:
    op.drop_table("executions")
    op.drop_table("sandboxes")
    op.drop_table("cargos")
