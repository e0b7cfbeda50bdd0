"""inputs: HTTP input (webhook) endpoints and their request audit log

Revision ID: inputs_0001
Revises: 0001_core
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from portside.server.store.base import UTCDateTime

revision: str = "inputs_0001"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("inputs",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "http_inputs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("requests_processed", sa.Integer(), nullable=False),
        sa.Column("last_request_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_http_inputs_owner", "http_inputs", ["owner"])
    op.create_table(
        "http_input_requests",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("input_id", sa.String(40), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("path", sa.String(2000), nullable=False),
        sa.Column("remote_addr", sa.String(100), nullable=True),
        sa.Column("body_bytes", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(100), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
    )
    op.create_index("ix_http_input_requests_input_received", "http_input_requests", ["input_id", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_http_input_requests_input_received", table_name="http_input_requests")
    op.drop_table("http_input_requests")
    op.drop_index("ix_http_inputs_owner", table_name="http_inputs")
    op.drop_table("http_inputs")
