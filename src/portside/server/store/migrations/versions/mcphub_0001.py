"""mcphub: registered MCP servers and the tool-call audit log

Revision ID: mcphub_0001
Revises: 0001_core
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from portside.server.store.base import UTCDateTime

revision: str = "mcphub_0001"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("mcphub",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mcp_servers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("transport", sa.String(32), nullable=False),
        sa.Column("command", sa.String(2000), nullable=True),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("cwd", sa.String(2000), nullable=True),
        sa.Column("url", sa.String(2000), nullable=True),
        sa.Column("env_keys", sa.JSON(), nullable=False),
        sa.Column("header_keys", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("timeout_seconds", sa.Float(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("desired_state", sa.String(16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_connected_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("name", name="uq_mcp_servers_name"),
    )
    op.create_table(
        "mcp_tool_calls",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("server_id", sa.String(40), nullable=False),
        sa.Column("server_name", sa.String(100), nullable=False),
        sa.Column("tool", sa.String(300), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result_preview", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_mcp_tool_calls_server_created", "mcp_tool_calls", ["server_id", "created_at"])
    op.create_index("ix_mcp_tool_calls_owner_created", "mcp_tool_calls", ["owner", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_mcp_tool_calls_owner_created", table_name="mcp_tool_calls")
    op.drop_index("ix_mcp_tool_calls_server_created", table_name="mcp_tool_calls")
    op.drop_table("mcp_tool_calls")
    op.drop_table("mcp_servers")
