"""The application context: settings, store and services, shared by every door."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request

from portside.server.auth import KeyService
from portside.server.settings import Settings
from portside.server.store import Database

T = TypeVar("T")
Hook = Callable[[], Awaitable[None]]


@dataclass
class AppContext:
    """Everything a request handler or background task needs. One per app instance."""

    settings: Settings
    db: Database
    keys: KeyService
    services: dict[str, Any] = field(default_factory=dict)
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    #: (path prefix, renderer) pairs; a dialect renders its own error bodies.
    error_renderers: list[tuple[str, Any]] = field(default_factory=list)
    #: Named readiness facts reported by ``/v1/ready`` (e.g. the vector index in use).
    readiness: dict[str, Any] = field(default_factory=dict)
    #: Warnings shown by ``/v1/health`` (e.g. an unsafe sandbox driver).
    warnings: list[str] = field(default_factory=list)

    def service(self, name: str, kind: type[T]) -> T:
        """The service registered under ``name``, checked to be a ``kind``."""
        svc = self.services[name]
        if not isinstance(svc, kind):  # pragma: no cover - wiring error
            raise TypeError(f"service {name!r} is {type(svc).__name__}, not {kind.__name__}")
        return svc


async def get_ctx(request: Request) -> AppContext:
    """FastAPI dependency: the app's context."""
    ctx: AppContext = request.app.state.ctx
    return ctx
