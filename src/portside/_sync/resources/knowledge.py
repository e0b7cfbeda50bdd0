# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""``client.knowledge``: the knowledge base (add, get, list, delete, search) and RAG context."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from portside._sync._http import HTTP, new_idempotency_key
from portside.types.knowledge import KnowledgeContext, KnowledgeItem, KnowledgeItemList, KnowledgeSearchResult


def _item_body(
    content: str,
    *,
    id: str | None = None,
    source: str | None = None,
    source_type: str = "document",
    agent_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    timestamp: datetime | str | None = None,
    chunking: str = "auto",
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"content": content, "source_type": source_type, "chunking": chunking}
    optional = {
        "id": id,
        "source": source,
        "agent_id": agent_id,
        "metadata": dict(metadata) if metadata is not None else None,
        "timestamp": timestamp.isoformat() if isinstance(timestamp, datetime) else timestamp,
        "chunk_size": chunk_size,
        "chunk_overlap": chunk_overlap,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


class Knowledge:
    """Items are chunked (``chunk_size`` words, ``chunk_overlap`` shared) and embedded by the server.

    Adding an ``id`` that exists replaces that item. Scores are cosine similarities; searches return
    hits at or above ``threshold`` (server default 0.3).
    """

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def add(
        self,
        content: str,
        *,
        id: str | None = None,
        source: str | None = None,
        source_type: str = "document",
        agent_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        timestamp: datetime | str | None = None,
        chunking: str = "auto",
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
    ) -> KnowledgeItem:
        """Add one item (``chunking``: auto, text, markdown or none)."""
        body = _item_body(
            content,
            id=id,
            source=source,
            source_type=source_type,
            agent_id=agent_id,
            metadata=metadata,
            timestamp=timestamp,
            chunking=chunking,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
        )
        data = self._http.json("POST", "/v1/knowledge", json=body, idempotency_key=new_idempotency_key())
        return KnowledgeItem.model_validate(data)

    def add_many(
        self, items: Sequence[Mapping[str, Any]], *, timeout: float | None = None
    ) -> builtins.list[KnowledgeItem]:
        """Add several items in one transaction; each is a dict of :meth:`add`'s arguments (``content`` required)."""
        body = {"items": [_item_body(**dict(i)) for i in items]}
        data = self._http.json(
            "POST", "/v1/knowledge/batch", json=body, idempotency_key=new_idempotency_key(), timeout=timeout
        )
        return [KnowledgeItem.model_validate(i) for i in data["items"]]

    def get(self, item_id: str) -> KnowledgeItem:
        """An item with its content."""
        return KnowledgeItem.model_validate(self._http.json("GET", f"/v1/knowledge/{quote(item_id, safe='')}"))

    def list(
        self, *, agent_id: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> KnowledgeItemList:
        """Items by id (without content); pass ``next_cursor`` back as ``cursor`` for the next page."""
        params = {"agent_id": agent_id, "limit": limit, "cursor": cursor}
        return KnowledgeItemList.model_validate(self._http.json("GET", "/v1/knowledge", params=params))

    def iter_all(self, *, agent_id: str | None = None, page_size: int = 100) -> Iterator[KnowledgeItem]:
        """Every item (without content), fetched page by page."""
        cursor: str | None = None
        while True:
            page = self.list(agent_id=agent_id, limit=page_size, cursor=cursor)
            for item in page.items:
                yield item
            if not page.next_cursor or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    def delete(self, item_id: str) -> None:
        """Delete an item and its vectors (404 if it does not exist)."""
        self._http.json("DELETE", f"/v1/knowledge/{quote(item_id, safe='')}")

    def search(
        self,
        query: str,
        *,
        top_k: int = 5,
        agent_id: str | None = None,
        include_shared: bool = False,
        source_types: Sequence[str] | None = None,
        filter: Mapping[str, Any] | None = None,
        threshold: float | None = None,
        per_item: bool = True,
    ) -> KnowledgeSearchResult:
        """Passages most similar to ``query``, best first (``filter``: equalities on item metadata)."""
        body: dict[str, Any] = {
            "query": query,
            "top_k": top_k,
            "agent_id": agent_id,
            "include_shared": include_shared,
            "source_types": list(source_types) if source_types is not None else None,
            "filter": dict(filter) if filter is not None else None,
            "threshold": threshold,
            "per_item": per_item,
        }
        return KnowledgeSearchResult.model_validate(self._http.json("POST", "/v1/knowledge/search", json=body))

    def context(
        self,
        query: str,
        *,
        max_items: int = 5,
        max_tokens: int | None = None,
        agent_id: str | None = None,
        include_shared: bool = False,
        source_types: Sequence[str] | None = None,
        filter: Mapping[str, Any] | None = None,
        threshold: float | None = None,
    ) -> KnowledgeContext:
        """RAG: the most relevant passages within ``max_tokens`` model tokens, with their sources."""
        body: dict[str, Any] = {
            "query": query,
            "max_items": max_items,
            "max_tokens": max_tokens,
            "agent_id": agent_id,
            "include_shared": include_shared,
            "source_types": list(source_types) if source_types is not None else None,
            "filter": dict(filter) if filter is not None else None,
            "threshold": threshold,
        }
        return KnowledgeContext.model_validate(self._http.json("POST", "/v1/knowledge/context", json=body))
