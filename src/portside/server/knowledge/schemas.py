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
]


class KnowledgeBatch(WireModel):
    """The items stored by one batch (each with ``replaced``)."""

    items: list[KnowledgeItem]


class KnowledgeDeleted(Deleted):
    id: str
