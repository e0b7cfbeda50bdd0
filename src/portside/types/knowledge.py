"""Knowledge base models: items, search hits and RAG context."""

from __future__ import annotations

from typing import Any

from portside.types.common import Model


class KnowledgeItem(Model):
    """A stored item; ``content`` only from ``get``."""

    id: str
    agent_id: str | None = None
    source: str | None = None
    source_type: str = "document"
    metadata: dict[str, Any] = {}
    timestamp: str
    chunk_count: int
    created_at: str
    updated_at: str
    content: str | None = None
    replaced: bool | None = None


class KnowledgeItemList(Model):
    items: list[KnowledgeItem]
    next_cursor: str | None = None


class KnowledgeChunk(Model):
    """Where a passage sits in its item: ``content[start:end] == text``."""

    index: int
    text: str
    start: int
    end: int
    heading: str | None = None


class KnowledgeHit(Model):
    """A passage that matched, with its cosine similarity ``score``."""

    item: KnowledgeItem
    chunk: KnowledgeChunk
    source: str
    score: float


class KnowledgeSearchResult(Model):
    query: str
    results: list[KnowledgeHit]
    total: int
    index: str | None = None


class KnowledgePassage(KnowledgeHit):
    tokens: int


class KnowledgeContext(Model):
    """Passages for a prompt within a token budget; ``context`` is them joined with ``[n] source`` lines."""

    query: str
    context: str
    passages: list[KnowledgePassage]
    sources: list[str]
    total_tokens: int
    max_tokens: int
    truncated: bool = False
