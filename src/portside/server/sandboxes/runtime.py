"""Live sandbox runtimes of this server process: start on demand, reuse, stop.

The store is the source of truth for sandbox records; this manager only tracks which
sandboxes have a running runtime (kernel and processes) here, keyed by sandbox id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

from portside.server.keyedlocks import KeyedLocks
from portside.server.sandboxes.drivers.base import Resources, SandboxDriver, SandboxHandle, SandboxSpec
from portside.server.sandboxes.drivers.volumes import PlainVolumes, Volumes

log = logging.getLogger("portside.sandboxes")


class WarmPool(Protocol):
    """A pool of pre-started sandboxes (see ``drivers/pool.py``)."""

    async def try_acquire(self, spec: SandboxSpec) -> SandboxHandle | None: ...

    async def close(self) -> None: ...


class RuntimeManager:
    """Starts, finds and stops sandbox runtimes; one start per sandbox at a time.

    Per-sandbox state lives only as long as it is needed: a handle while the runtime runs, a lock
    while someone holds or waits for it. Listeners added to ``on_stop`` hear of every stop, so that
    other per-sandbox state (e.g. browser sessions) can go with the runtime.
    """

    def __init__(self, driver: SandboxDriver, pool: WarmPool | None = None, volumes: Volumes | None = None) -> None:
        self.driver = driver
        self.pool = pool
        self.volumes = volumes or PlainVolumes()
        self._handles: dict[str, SandboxHandle] = {}
        self._locks = KeyedLocks()
        self.on_stop: list[Callable[[str], Awaitable[None]]] = []

    def lock(self, sandbox_id: str) -> AbstractAsyncContextManager[None]:
        """Serialise starts and stops of one sandbox (``async with runtimes.lock(id):``)."""
        return self._locks.hold(sandbox_id)

    def tracked(self) -> dict[str, int]:
        """How many sandboxes have per-sandbox state here (tests and leak checks)."""
        return {"handles": len(self._handles), "locks": len(self._locks)}

    def get(self, sandbox_id: str) -> SandboxHandle | None:
        """The live runtime of a sandbox, if it runs here.

        A dead one (its agent was killed, e.g. by the OOM killer) stays registered until :meth:`stop` or the
        next :meth:`start`, so that stopping, deleting or expiring the sandbox still waits for its cleanup.
        """
        handle = self._handles.get(sandbox_id)
        return handle if handle is not None and handle.alive else None

    async def start(
        self, sandbox_id: str, workspace: Path, resources: Resources, *, fresh_workspace: bool = False
    ) -> SandboxHandle:
        """Start a runtime for the sandbox (from the warm pool when its workspace is new and empty).

        A fresh workspace becomes a volume of ``resources.disk_mb`` (when set); an existing one is mounted.
        """
        spec = SandboxSpec(sandbox_id=sandbox_id, workspace=workspace, resources=resources)
        handle: SandboxHandle | None = None
        if fresh_workspace and self.pool is not None:
            handle = await self.pool.try_acquire(spec)
        if handle is None:
            if fresh_workspace and resources.disk_mb is not None:
                await asyncio.to_thread(self.volumes.create, workspace, resources.disk_mb)
            elif not self.volumes.is_mounted(workspace):
                await asyncio.to_thread(self.volumes.mount, workspace)
            handle = await self.driver.start(spec)
        dead = self._handles.get(sandbox_id)
        if dead is not None and dead is not handle:
            await dead.stop()  # a runtime whose agent died: finish its cleanup
        self._handles[sandbox_id] = handle
        return handle

    async def stop(self, sandbox_id: str) -> None:
        """Stop the sandbox's runtime here, if any; its workspace stays."""
        handle = self._handles.pop(sandbox_id, None)
        if handle is not None:
            await handle.stop()
        for listener in self.on_stop:
            try:
                await listener(sandbox_id)
            except Exception:  # a listener must not keep a sandbox from stopping
                log.exception("sandbox %s: stop listener failed", sandbox_id)

    def running(self) -> list[str]:
        return [sid for sid, h in self._handles.items() if h.alive]

    async def stats(self, sandbox_id: str) -> dict[str, Any] | None:
        handle = self.get(sandbox_id)
        return (await handle.stats()).model_dump() if handle else None

    async def close(self) -> None:
        """Stop every runtime and the pool (server shutdown)."""
        await asyncio.gather(*(self.stop(sid) for sid in list(self._handles)), return_exceptions=True)
        if self.pool is not None:
            await self.pool.close()
        await self.driver.close()
        await asyncio.to_thread(self.volumes.close)
