"""Tables of the knowledge area: items, their chunks with float32 vectors, and the change log.

The database is the source of truth; vector indexes are rebuilt from ``knowledge_chunks.embedding``.
``knowledge_state.version`` is bumped by every write transaction (which also serialises writers on
PostgreSQL: the row is locked); chunks and tombstones carry the version that wrote them, so a replica
that has seen version ``v`` catches up by reading rows with ``version > v``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKeyConstraint, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portside.server.store.base import Base, TimestampMixin, UTCDateTime


class KnowledgeItemRow(TimestampMixin, Base):
    """A document added to the knowledge base; ids are unique per owner."""

    __tablename__ = "knowledge_items"
    __table_args__ = (Index("ix_knowledge_items_owner_agent", "owner", "agent_id"),)

    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    agent_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    source_type: Mapped[str] = mapped_column(String(32), default="document")
    content: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    #: When the source says it was written (Symbiont's ``metadata.timestamp``); else ``created_at``.
    source_timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    content_sha256: Mapped[str] = mapped_column(String(64))


class KnowledgeChunkRow(Base):
    """One chunk of an item with its embedding (``dim`` float32 values, little-endian)."""

    __tablename__ = "knowledge_chunks"
    __table_args__ = (
        ForeignKeyConstraint(["owner", "item_id"], ["knowledge_items.owner", "knowledge_items.id"], ondelete="CASCADE"),
        Index("ix_knowledge_chunks_item", "owner", "item_id"),
        Index("ix_knowledge_chunks_version", "version"),
        {"sqlite_autoincrement": True},  # ids are never reused: tombstones name them
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(200))
    item_id: Mapped[str] = mapped_column(String(200))
    chunk_index: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    heading: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_id: Mapped[str] = mapped_column(String(100))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    #: Copies of the item's fields, so that the index can be rebuilt from this table alone.
    agent_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source_type: Mapped[str] = mapped_column(String(32))
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class KnowledgeTombstoneRow(Base):
    """A chunk deleted by the write transaction ``version`` (replicas drop it from their index)."""

    __tablename__ = "knowledge_tombstones"
    __table_args__ = (Index("ix_knowledge_tombstones_version", "version"),)

    chunk_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KnowledgeStateRow(Base):
    """The single row ``id = 1``: the write version and the store's random ``epoch``."""

    __tablename__ = "knowledge_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, default=0)
    epoch: Mapped[str] = mapped_column(String(40))
