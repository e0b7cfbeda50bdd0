"""End event streams when uvicorn starts shutting down.

uvicorn waits for open responses to finish *before* it runs the lifespan shutdown, so a server
holding SSE streams would never stop. We wrap ``uvicorn.Server.shutdown`` (once per process) to
run the hooks registered for the app being served first; the workers then reconnect elsewhere.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("portside.workers.shutdown")

Hook = Callable[[], Awaitable[None]]
_HOOKS: weakref.WeakKeyDictionary[Any, list[Hook]] = weakref.WeakKeyDictionary()
_patched = False


def on_server_shutdown(app: Any, hook: Hook) -> None:
    """Run ``hook`` when a uvicorn server serving ``app`` begins to shut down."""
    _HOOKS.setdefault(app, []).append(hook)
    _patch()


def _patch() -> None:
    global _patched
    if _patched:
        return
    try:
        from uvicorn.server import Server
    except ImportError:  # pragma: no cover - served by something else
        return
    original = Server.shutdown

    async def shutdown(self: Any, sockets: Any = None) -> None:
        for hook in _HOOKS.get(getattr(self.config, "app", None), []):
            try:
                await hook()
            except Exception:  # pragma: no cover - keep shutting down
                log.exception("shutdown hook failed")
        await original(self, sockets)

    Server.shutdown = shutdown  # type: ignore[method-assign]
    _patched = True
