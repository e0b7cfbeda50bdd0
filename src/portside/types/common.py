"""Base model and shapes shared across areas."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Model(BaseModel):
    """Base of every SDK model: unknown fields from newer servers are kept, not rejected."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Page(Model, Generic[T]):
    """One page of a list."""

    items: list[T]
    total: int | None = None
    next_cursor: str | None = None


class Health(Model):
    status: str
    #: Shown to key holders only (None when the client has no key).
    version: str | None = None
    uptime_seconds: float | None = None
    warnings: list[str] = []


JSON = dict[str, Any]
