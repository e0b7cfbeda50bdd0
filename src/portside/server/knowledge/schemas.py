"""Response models of ``/v1/knowledge``: the SDK's :mod:`portside.types.knowledge` models, shared."""

from __future__ import annotations

from portside.server.api.wire import Deleted, WireModel
from portside.types.knowledge import (
    KnowledgeContext,
    KnowledgeItem,
    KnowledgeItemList,
    KnowledgeSearchResult,
)

__all__ = [
    "KnowledgeBatch",
    "KnowledgeContext",
    "KnowledgeDeleted",
    "KnowledgeItem",
    "KnowledgeItemList",
    "KnowledgeSearchResult",
    "SymbiontContextResponse",
    "SymbiontKnowledgeAdded",
    "SymbiontKnowledgeItem",
    "SymbiontVectorMetadata",
    "SymbiontVectorSearchResponse",
    "SymbiontVectorSearchResult",
]


class KnowledgeBatch(WireModel):
    """The items stored by one batch (each with ``replaced``)."""

    items: list[KnowledgeItem]


class KnowledgeDeleted(Deleted):
    id: str


# ---------------------------------------------------------------- Symbiont door (``/api/v1/knowledge``, ``/rag``)


class SymbiontKnowledgeAdded(WireModel):
    """The answer to Symbiont's ``add_knowledge_item`` (``status`` is ``added`` or ``updated``)."""

    id: str
    status: str
    chunk_count: int
    created_at: str


class SymbiontVectorMetadata(WireModel):
    """``symbiont.VectorMetadata``; ``chunk_index`` is the position of the matching passage."""

    source: str
    source_type: str
    chunk_index: int | None = None
    timestamp: str
    agent_id: str | None = None


class SymbiontKnowledgeItem(WireModel):
    """``symbiont.KnowledgeItem``: ``content`` is the matching passage; ``embedding`` is never sent (null)."""

    id: str
    content: str
    embedding: list[float] | None = None
    metadata: SymbiontVectorMetadata


class SymbiontVectorSearchResult(WireModel):
    """``symbiont.VectorSearchResult``."""

    item: SymbiontKnowledgeItem
    similarity_score: float


class SymbiontVectorSearchResponse(WireModel):
    """``symbiont.VectorSearchResponse``."""

    results: list[SymbiontVectorSearchResult]
    query: str
    total_results: int


class SymbiontContextResponse(WireModel):
    """``symbiont.ContextResponse``: passages, their sources and scores, index-aligned."""

    context_items: list[str]
    sources: list[str]
    query: str
    relevance_scores: list[float]
