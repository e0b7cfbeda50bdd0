"""knowledge: items, chunks with their vectors, tombstones, change version

Revision ID: knowledge_0001
Revises: 0001_core
Create Date: 2026-11-25
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from portside.server.store.base import UTCDateTime

revision: str = "knowledge_0001"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("knowledge",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "knowledge_items",
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("agent_id", sa.String(200), nullable=True),
        sa.Column("source", sa.String(1000), nullable=True),
        sa.Column("source_type", sa.String(32), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("source_timestamp", UTCDateTime(), nullable=True),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("owner", "id", name="pk_knowledge_items"),
    )
    op.create_index("ix_knowledge_items_owner_agent", "knowledge_items", ["owner", "agent_id"])
    op.create_table(
        "knowledge_chunks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("heading", sa.Text(), nullable=True),
        sa.Column("model_id", sa.String(100), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("agent_id", sa.String(200), nullable=True),
        sa.Column("source_type", sa.String(32), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner", "item_id"],
            ["knowledge_items.owner", "knowledge_items.id"],
            name="fk_knowledge_chunks_owner_knowledge_items",
            ondelete="CASCADE",
        ),
        sqlite_autoincrement=True,  # ids are never reused: tombstones name them
    )
    op.create_index("ix_knowledge_chunks_item", "knowledge_chunks", ["owner", "item_id"])
    op.create_index("ix_knowledge_chunks_version", "knowledge_chunks", ["version"])
    op.create_table(
        "knowledge_tombstones",
        sa.Column("chunk_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_knowledge_tombstones_version", "knowledge_tombstones", ["version"])
    state = op.create_table(
        "knowledge_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.String(40), nullable=False),
    )
    op.bulk_insert(state, [{"id": 1, "version": 0, "epoch": secrets.token_hex(16)}])


def downgrade() -> None:
    op.drop_table("knowledge_state")
    op.drop_index("ix_knowledge_tombstones_version", table_name="knowledge_tombstones")
    op.drop_table("knowledge_tombstones")
    op.drop_index("ix_knowledge_chunks_version", table_name="knowledge_chunks")
    op.drop_index("ix_knowledge_chunks_item", table_name="knowledge_chunks")
    op.drop_table("knowledge_chunks")
    op.drop_index("ix_knowledge_items_owner_agent", table_name="knowledge_items")
    op.drop_table("knowledge_items")
    op.execute("DROP TABLE IF EXISTS knowledge_vectors")  # the pgvector index, if one was created
