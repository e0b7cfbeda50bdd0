"""Values the knowledge service takes and returns, its settings, and input validation."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from portside.server.errors import InvalidInput, PayloadTooLarge

__all__ = [
    "CHUNKING_MODES",
    "SYMBIONT_SOURCE_TYPES",
    "Context",
    "Item",
    "KnowledgeSettings",
    "NewItem",
    "Passage",
    "check_agent_id",
    "check_item_id",
    "check_source_type",
    "metadata_filter",
]

#: ``auto`` picks ``markdown`` for ``.md`` sources or text with ATX headings, else ``text``.
CHUNKING_MODES = ("auto", "text", "markdown", "none")
#: The source types Symbiont knows; others are allowed natively and shown to Symbiont as ``document``.
SYMBIONT_SOURCE_TYPES = ("document", "code", "api_reference", "conversation")

_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")
_SOURCE_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_META_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_MAX_METADATA_BYTES = 65536
_MAX_FILTER_VALUE = 200


class KnowledgeSettings(BaseSettings):
    """``PORTSIDE_KNOWLEDGE_*``."""

    model_config = SettingsConfigDict(env_prefix="PORTSIDE_KNOWLEDGE_", extra="ignore")

    index: str = Field(default="auto", description="auto, pgvector, sqlite-vec or numpy-exact.")
    warm: bool = Field(default=True, description="Load the embedding model in the background after start-up.")
    similarity_threshold: float = Field(default=0.3, ge=-1.0, le=1.0, description="Default minimum cosine.")
    context_tokens: int = Field(default=1024, ge=16, le=100_000, description="Default RAG token budget.")
    max_item_chars: int = Field(default=2_000_000, ge=1, description="Largest item content, in characters.")
    max_batch_items: int = Field(default=256, ge=1, description="Most items in one batch add.")
    max_batch_chars: int = Field(default=16_000_000, ge=1, description="Most characters in one batch add.")
    chunk_size: int = Field(default=160, ge=8, le=4000, description="Default chunk size in words.")
    chunk_overlap: int = Field(default=32, ge=0, le=1000, description="Default chunk overlap in words.")


@dataclass(frozen=True)
class NewItem:
    """An item to add (or replace, when ``id`` exists for the owner)."""

    content: str
    id: str | None = None
    source: str | None = None
    source_type: str = "document"
    agent_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None
    chunking: str = "auto"
    chunk_size: int | None = None
    chunk_overlap: int | None = None


@dataclass(frozen=True)
class Item:
    """A stored item. ``content`` is None where only a summary is returned (search hits)."""

    id: str
    owner: str
    agent_id: str | None
    source: str | None
    source_type: str
    metadata: dict[str, Any]
    timestamp: datetime
    chunk_count: int
    created_at: datetime
    updated_at: datetime
    content: str | None = None
    replaced: bool = False


@dataclass(frozen=True)
class Passage:
    """A chunk of an item that matched a query, with its cosine ``score``."""

    item: Item
    chunk_id: int
    chunk_index: int
    text: str
    start: int
    end: int
    heading: str | None
    score: float

    @property
    def source(self) -> str:
        """Where the passage comes from: the item's source (or id), with the heading path if any."""
        base = self.item.source or self.item.id
        return f"{base}#{self.heading}" if self.heading else base


@dataclass(frozen=True)
class Context:
    """Passages for a prompt, best first, within ``max_tokens`` model tokens."""

    query: str
    passages: list[Passage]
    tokens: list[int]
    max_tokens: int
    truncated: bool

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)

    @property
    def text(self) -> str:
        """The passages joined, each preceded by ``[n] source``."""
        return "\n\n".join(f"[{n}] {p.source}\n{p.text}" for n, p in enumerate(self.passages, 1))


def check_item_id(item_id: str) -> str:
    if item_id != item_id.strip() or not _ID.match(item_id):
        raise InvalidInput(
            "item id must be 1-200 characters, without control characters or surrounding spaces",
            code="invalid_item_id",
        )
    return item_id


def check_agent_id(agent_id: str | None) -> str | None:
    if agent_id is not None and (not agent_id or len(agent_id) > 200):
        raise InvalidInput("agent_id must be 1-200 characters", code="invalid_agent_id")
    return agent_id


def check_source_type(source_type: str) -> str:
    if not _SOURCE_TYPE.match(source_type):
        raise InvalidInput(
            "source_type must be lower-case letters, digits and '_' (e.g. document, code, api_reference, conversation)",
            code="invalid_source_type",
        )
    return source_type


def check_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(metadata, Mapping):
        raise InvalidInput("metadata must be an object", code="invalid_metadata")
    try:
        text = json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata must be JSON: {exc}", code="invalid_metadata") from exc
    if len(text.encode()) > _MAX_METADATA_BYTES:
        raise PayloadTooLarge("metadata is larger than 64 KiB", code="invalid_metadata")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _filterable(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= _MAX_FILTER_VALUE
    return value is None or isinstance(value, bool | int | float)


def index_metadata(owner: str, agent_id: str | None, source_type: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """What the vector index stores next to a chunk: scope fields and the item's scalar metadata."""
    out: dict[str, Any] = {"owner": owner, "agent_id": agent_id, "source_type": source_type}
    for key, value in metadata.items():
        if _META_KEY.match(key) and _filterable(value):
            out[f"m.{key}"] = value
    return out


def metadata_filter(filters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Index filter entries for equalities on item metadata (scalar values only)."""
    out: dict[str, Any] = {}
    for key, value in (filters or {}).items():
        if not _META_KEY.match(key):
            raise InvalidInput(f"invalid metadata filter key {key!r}", code="invalid_filter")
        if not _filterable(value):
            raise InvalidInput(
                f"metadata filter {key!r}: values must be strings (up to 200 characters), numbers, booleans or null",
                code="invalid_filter",
            )
        out[f"m.{key}"] = value
    return out
