"""Symbiont knowledge and RAG: ``/api/v1/knowledge``, ``/knowledge/search``, ``/knowledge/{id}``, ``/rag/context``.

Served by the native knowledge service. Search results are passages: ``item.content`` is the matching
chunk and ``metadata.chunk_index`` its position (one result per item, its best chunk). The SDK's
``similarity_threshold`` (default 0.7) is applied to cosine similarities as given. ``rag/context`` has
no token budget on the wire: the service default applies; ``include_conversation_history: false`` leaves
out items of type ``conversation``. The client's ``embedding`` is ignored: vectors must come from the
server's model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from portside.server.api.v1.knowledge import ITEM_ID, SOURCE_TYPE, TEXT
from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.clock import isoformat
from portside.server.context import AppContext, get_ctx
from portside.server.knowledge.records import SYMBIONT_SOURCE_TYPES, NewItem, Passage
from portside.server.knowledge.schemas import (
    KnowledgeDeleted,
    SymbiontContextResponse,
    SymbiontKnowledgeAdded,
    SymbiontVectorSearchResponse,
)
from portside.server.knowledge.service import KnowledgeService
from portside.server.ratelimit import rate_limited

router = APIRouter(tags=["symbiont"], route_class=WireRoute)
Reader = Depends(rate_limited("read"))
Writer = Depends(rate_limited("write"))


def svc(ctx: AppContext = Depends(get_ctx)) -> KnowledgeService:
    return ctx.service("knowledge", KnowledgeService)


class VectorMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    source: str = Field(max_length=1000)
    source_type: str = Field(default="document", json_schema_extra={"pattern": SOURCE_TYPE})
    chunk_index: int | None = None
    timestamp: datetime | None = None
    agent_id: str | None = None


class SymbiontNewKnowledgeItem(BaseModel):
    """``symbiont.KnowledgeItem`` as the SDK sends it to `POST /api/v1/knowledge`."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(json_schema_extra={"pattern": ITEM_ID})  # the service's rules, its own codes
    content: str = Field(json_schema_extra={"minLength": 1, "pattern": TEXT})
    embedding: list[float] | None = None
    metadata: VectorMetadata


class VectorSearchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str = Field(json_schema_extra={"minLength": 1, "maxLength": 10_000, "pattern": TEXT})
    agent_id: str | None = Field(default=None, json_schema_extra={"minLength": 1, "maxLength": 200})
    source_types: list[str] = Field(
        default_factory=list, json_schema_extra={"items": {"type": "string", "pattern": SOURCE_TYPE}}
    )
    limit: int = Field(default=10, json_schema_extra={"minimum": 1, "maximum": 100})
    similarity_threshold: float = 0.7


class ContextQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str = Field(json_schema_extra={"minLength": 1, "maxLength": 10_000, "pattern": TEXT})
    agent_id: str | None = Field(default=None, json_schema_extra={"minLength": 1, "maxLength": 200})
    max_context_items: int = Field(default=5, json_schema_extra={"minimum": 1, "maximum": 100})
    include_conversation_history: bool = True


def _symbiont_item(p: Passage) -> dict[str, Any]:
    item = p.item
    return {
        "id": item.id,
        "content": p.text,
        "embedding": None,
        "metadata": {
            "source": item.source or item.id,
            "source_type": item.source_type if item.source_type in SYMBIONT_SOURCE_TYPES else "document",
            "chunk_index": p.chunk_index,
            "timestamp": isoformat(item.timestamp),
            "agent_id": item.agent_id,
        },
    }


@router.post("/knowledge", response_model=SymbiontKnowledgeAdded)
async def add_knowledge_item(
    body: SymbiontNewKnowledgeItem, s: KnowledgeService = Depends(svc), caller: Principal = Writer
) -> Any:
    meta = body.metadata
    extra = {k: v for k, v in (meta.model_extra or {}).items()}
    item = await s.add(
        caller.owner,
        NewItem(
            content=body.content,
            id=body.id,
            source=meta.source,
            source_type=meta.source_type,
            agent_id=meta.agent_id,
            metadata=extra,
            timestamp=meta.timestamp,
        ),
    )
    return {
        "id": item.id,
        "status": "updated" if item.replaced else "added",
        "chunk_count": item.chunk_count,
        "created_at": isoformat(item.created_at),
    }


@router.post("/knowledge/search", response_model=SymbiontVectorSearchResponse)
async def search_knowledge(
    body: VectorSearchRequest, s: KnowledgeService = Depends(svc), caller: Principal = Reader
) -> Any:
    hits = await s.search(
        caller.owner,
        body.query,
        top_k=body.limit,
        agent_id=body.agent_id,
        source_types=body.source_types or None,
        threshold=body.similarity_threshold,
    )
    results = [{"item": _symbiont_item(h), "similarity_score": round(h.score, 6)} for h in hits]
    return {"results": results, "query": body.query, "total_results": len(results)}


@router.delete("/knowledge/{item_id:path}", response_model=KnowledgeDeleted)
async def delete_knowledge_item(item_id: str, s: KnowledgeService = Depends(svc), caller: Principal = Writer) -> Any:
    await s.delete(caller.owner, item_id)
    return {"id": item_id, "deleted": True}


@router.post("/rag/context", response_model=SymbiontContextResponse)
async def get_context(body: ContextQuery, s: KnowledgeService = Depends(svc), caller: Principal = Reader) -> Any:
    types = None if body.include_conversation_history else [t for t in SYMBIONT_SOURCE_TYPES if t != "conversation"]
    result = await s.context(
        caller.owner, body.query, agent_id=body.agent_id, source_types=types, max_items=body.max_context_items
    )
    return {
        "context_items": [p.text for p in result.passages],
        "sources": [p.source for p in result.passages],
        "query": body.query,
        "relevance_scores": [round(p.score, 6) for p in result.passages],
    }
