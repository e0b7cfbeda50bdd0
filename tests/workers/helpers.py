"""Helpers shared by the workers, conformance and reliability tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

from portside.server.settings import Settings
from portside.server.workers.domain import Frame, LeaseFrame
from portside.server.workers.service import WorkersService
from portside.server.workers.sessions import Session
from tests.conftest import LiveServer, free_port

T = TypeVar("T")

#: Lease and polling settings that make expiry tests take about a second.
FAST: dict[str, Any] = {
    "lease_ttl_s": 1.0,
    "reaper_interval_s": 0.1,
    "poll_interval_s": 0.2,
    "retry_backoff_s": 0.05,
    "retry_backoff_max_s": 0.2,
    "heartbeat_interval_s": 0.3,
}


def service(app: FastAPI) -> WorkersService:
    svc = app.state.ctx.services["workers"]
    assert isinstance(svc, WorkersService)
    return svc


def tune(app: FastAPI, **overrides: Any) -> WorkersService:
    """Apply FAST (plus overrides) to the app's workers config; call before the app starts."""
    svc = service(app)
    for key, value in {**FAST, **overrides}.items():
        setattr(svc.config, key, value)
    return svc


def live(settings: Settings, *, port: int | None = None, **overrides: Any) -> LiveServer:
    """A started live server with fast workers settings, optionally on a fixed port (restarts)."""
    server = LiveServer(settings)
    if port is not None:
        server.port = port
        server.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(server.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        server.server = uvicorn.Server(config)
        server.thread = threading.Thread(target=server.server.run, daemon=True)
    tune(server.app, **overrides)
    return server.start()


def port() -> int:
    return free_port()


async def until(check: Callable[[], Awaitable[T] | T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        value = check()
        last = await value if asyncio.iscoroutine(value) else value  # type: ignore[arg-type]
        if last:
            return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
        await asyncio.sleep(interval)


async def next_lease(session: Session, timeout: float = 5.0) -> LeaseFrame:
    """The next lease frame queued for an in-process session (other frames are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("no lease frame arrived")
        frame: Frame | None = await asyncio.wait_for(session.outbox.get(), remaining)
        if isinstance(frame, LeaseFrame):
            return frame
