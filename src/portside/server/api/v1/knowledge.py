"""Knowledge base: ``/v1/knowledge`` (add, batch, list, get, delete), ``/search`` and ``/context`` (RAG).

Items belong to the caller's owner; ``agent_id`` scopes them to one agent. Reads need ``read``, writes
``write``. The vector index in use is reported by ``/v1/ready`` under ``knowledge_index``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.clock import isoformat
from portside.server.context import AppContext, get_ctx
from portside.server.knowledge.records import Context, Item, NewItem, Passage
from portside.server.knowledge.schemas import (
    KnowledgeBatch,
    KnowledgeContext,
    KnowledgeDeleted,
    KnowledgeItem,
    KnowledgeItemList,
    KnowledgeSearchResult,
)
from portside.server.knowledge.service import KnowledgeService
from portside.server.ratelimit import rate_limited

log = logging.getLogger("portside.knowledge")
router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"], route_class=WireRoute)
Reader = Depends(rate_limited("read"))
Writer = Depends(rate_limited("write"))


def svc(ctx: AppContext = Depends(get_ctx)) -> KnowledgeService:
    return ctx.service("knowledge", KnowledgeService)


#: Service rules the request schemas state (``knowledge.records`` / ``knowledge.service`` enforce them).
TEXT = r"\S"  # some non-blank character
ITEM_ID = r"^[^\s\x00-\x1f\x7f]([^\x00-\x1f\x7f]{0,198}[^\s\x00-\x1f\x7f])?$"
SOURCE_TYPE = r"^[a-z][a-z0-9_]{0,31}$"
CHUNKING: list[Any] = ["auto", "text", "markdown", "none"]


class AddItem(BaseModel):
    """One item to add; an existing ``id`` of the caller is replaced."""

    model_config = ConfigDict(extra="forbid")

    # The rules below are enforced by the service (its own error codes); the schema states them.
    content: str = Field(json_schema_extra={"minLength": 1, "pattern": TEXT})
    id: str | None = Field(default=None, json_schema_extra={"pattern": ITEM_ID})
    source: str | None = Field(default=None, json_schema_extra={"maxLength": 1000})
    source_type: str = Field(default="document", json_schema_extra={"pattern": SOURCE_TYPE})
    agent_id: str | None = Field(default=None, json_schema_extra={"minLength": 1, "maxLength": 200})
    metadata: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime | None = None
    chunking: str = Field(
        default="auto", description="auto, text, markdown or none (one chunk).", json_schema_extra={"enum": CHUNKING}
    )
    chunk_size: int | None = Field(
        default=None, description="Words per chunk (default 160).", json_schema_extra={"minimum": 8, "maximum": 4000}
    )
    chunk_overlap: int | None = Field(
        default=None,
        description="Words shared by consecutive chunks (default 32); smaller than chunk_size.",
        json_schema_extra={"minimum": 0, "maximum": 3999},
    )

    def to_new(self) -> NewItem:
        return NewItem(**self.model_dump())


class AddBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[AddItem]


class Scope(BaseModel):
    """Which items a search may return."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(json_schema_extra={"minLength": 1, "maxLength": 10_000, "pattern": TEXT})
    agent_id: str | None = Field(default=None, json_schema_extra={"minLength": 1, "maxLength": 200})
    include_shared: bool = Field(default=False, description="With agent_id: also items without an agent.")
    source_types: list[str] | None = Field(
        default=None, json_schema_extra={"items": {"type": "string", "pattern": SOURCE_TYPE}}
    )
    filter: dict[str, Any] | None = Field(
        default=None,
        description="Equalities on item metadata.",
        json_schema_extra={
            "propertyNames": {"pattern": r"^[A-Za-z0-9_.:-]{1,64}$"},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": 200},
                    {"type": "integer", "minimum": -(2**63 - 1), "maximum": 2**63 - 1},
                    {"type": "number", "not": {"type": "integer"}},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            },
        },
    )
    threshold: float | None = Field(default=None, description="Minimum cosine similarity (default 0.3).")


class SearchBody(Scope):
    top_k: int = Field(default=5, json_schema_extra={"minimum": 1, "maximum": 100})
    per_item: bool = Field(default=True, description="Only the best passage of each item.")


class ContextBody(Scope):
    max_items: int = Field(default=5, json_schema_extra={"minimum": 1, "maximum": 100})
    max_tokens: int | None = Field(
        default=None,
        description="Token budget (default 1024 model tokens).",
        json_schema_extra={"minimum": 1, "maximum": 100_000},
    )


def item_view(item: Item) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.id,
        "agent_id": item.agent_id,
        "source": item.source,
        "source_type": item.source_type,
        "metadata": item.metadata,
        "timestamp": isoformat(item.timestamp),
        "chunk_count": item.chunk_count,
        "created_at": isoformat(item.created_at),
        "updated_at": isoformat(item.updated_at),
    }
    if item.content is not None:
        out["content"] = item.content
    return out


def passage_view(p: Passage) -> dict[str, Any]:
    return {
        "item": item_view(p.item),
        "chunk": {"index": p.chunk_index, "text": p.text, "start": p.start, "end": p.end, "heading": p.heading},
        "source": p.source,
        "score": round(p.score, 6),
    }


def context_view(c: Context) -> dict[str, Any]:
    return {
        "query": c.query,
        "context": c.text,
        "passages": [{**passage_view(p), "tokens": n} for p, n in zip(c.passages, c.tokens, strict=True)],
        "sources": [p.source for p in c.passages],
        "total_tokens": c.total_tokens,
        "max_tokens": c.max_tokens,
        "truncated": c.truncated,
    }


@router.post("", status_code=201, response_model=KnowledgeItem)
async def add_item(body: AddItem, s: KnowledgeService = Depends(svc), caller: Principal = Writer) -> Any:
    """Add an item (chunked and embedded now); replaces the caller's item with the same id."""
    item = await s.add(caller.owner, body.to_new())
    return {**item_view(item), "replaced": item.replaced}


@router.post("/batch", status_code=201, response_model=KnowledgeBatch)
async def add_batch(body: AddBatch, s: KnowledgeService = Depends(svc), caller: Principal = Writer) -> Any:
    """Add several items in one transaction."""
    items = await s.add_many(caller.owner, [i.to_new() for i in body.items])
    return {"items": [{**item_view(i), "replaced": i.replaced} for i in items]}


@router.get("", response_model=KnowledgeItemList)
async def list_items(
    agent_id: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
    s: KnowledgeService = Depends(svc),
    caller: Principal = Reader,
) -> Any:
    items, next_cursor = await s.list_items(caller.owner, agent_id=agent_id, limit=limit, cursor=cursor)
    return {"items": [item_view(i) for i in items], "next_cursor": next_cursor}


@router.post("/search", response_model=KnowledgeSearchResult)
async def search(body: SearchBody, s: KnowledgeService = Depends(svc), caller: Principal = Reader) -> Any:
    """Passages most similar to the query, best first, with cosine scores."""
    hits = await s.search(
        caller.owner,
        body.query,
        top_k=body.top_k,
        agent_id=body.agent_id,
        include_shared=body.include_shared,
        source_types=body.source_types,
        metadata=body.filter,
        threshold=body.threshold,
        per_item=body.per_item,
    )
    return {"query": body.query, "results": [passage_view(h) for h in hits], "total": len(hits), "index": s.index_name}


@router.post("/context", response_model=KnowledgeContext)
async def context(body: ContextBody, s: KnowledgeService = Depends(svc), caller: Principal = Reader) -> Any:
    """RAG: the most relevant passages within a token budget, with their sources."""
    result = await s.context(
        caller.owner,
        body.query,
        agent_id=body.agent_id,
        include_shared=body.include_shared,
        source_types=body.source_types,
        metadata=body.filter,
        max_items=body.max_items,
        max_tokens=body.max_tokens,
        threshold=body.threshold,
    )
    return context_view(result)


@router.get("/{item_id:path}", response_model=KnowledgeItem)
async def get_item(item_id: str, s: KnowledgeService = Depends(svc), caller: Principal = Reader) -> Any:
    return item_view(await s.get(caller.owner, item_id))


@router.delete("/{item_id:path}", response_model=KnowledgeDeleted)
async def delete_item(item_id: str, s: KnowledgeService = Depends(svc), caller: Principal = Writer) -> Any:
    item = await s.delete(caller.owner, item_id)
    return {"id": item.id, "deleted": True}


def install(app: FastAPI, ctx: AppContext) -> None:
    """Register the knowledge service; open its index at start-up and build it in the background."""
    service = KnowledgeService(ctx.db, data_dir=ctx.settings.ensure_data_dir())
    ctx.services["knowledge"] = service
    ctx.readiness["knowledge_index"] = service.status
    app.include_router(router)
    tasks: list[asyncio.Task[None]] = []

    async def prepare() -> None:
        try:
            await service.prepare()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("knowledge index preparation failed")
            service.status.update(ok=False, state="failed")

    async def start() -> None:
        await service.start()
        tasks.append(asyncio.create_task(prepare(), name="knowledge-prepare"))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        tasks.clear()
        await service.stop()

    ctx.on_start.append(start)
    ctx.on_stop.append(stop)
