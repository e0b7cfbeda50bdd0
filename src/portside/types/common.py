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


class Readiness(Model):
    """``GET /v1/ready``: ``ready`` or ``not_ready`` (503); ``checks`` are shown to key holders only."""

    status: str
    checks: dict[str, Any] | None = None


class StatusReply(Model):
    """A bare acknowledgement (``{"status": "ok"}``, ``{"status": "stopped"}`` ...)."""

    status: str


class ErrorDetail(Model):
    """What went wrong: a stable ``code``, a message for people, structured ``details``."""

    code: str
    message: str
    details: dict[str, Any] = {}
    #: The request's id (also in the ``X-Request-ID`` header): quote it when reporting a problem.
    request_id: str | None = None


class ErrorBody(Model):
    """The native error body: ``{"error": {"code", "message", "details", "request_id"}}``."""

    error: ErrorDetail


JSON = dict[str, Any]
