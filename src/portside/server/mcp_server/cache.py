"""The session sandbox cache: one sandbox per MCP session, bounded, least recently used evicted.

A tool called without ``sandbox_id`` uses its session's sandbox, created on first use. Beyond
``max_size`` sessions the least recently used session's sandbox is released: deleted (default) or
stopped, through the backend of the caller who created it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from portside.server.keyedlocks import KeyedLocks
from portside.server.mcp_server.backend import Backend

log = logging.getLogger("portside.mcp")


@dataclass(frozen=True)
class CachedSandbox:
    sandbox_id: str
    backend: Backend


class SandboxCache:
    """Bounded LRU map of session key → sandbox."""

    def __init__(
        self,
        max_size: int,
        *,
        ttl: int | None = 3600,
        profile: str = "python-default",
        eviction: Literal["delete", "stop"] = "delete",
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.ttl = ttl or None
        self.profile = profile
        self.eviction = eviction
        self._entries: OrderedDict[str, CachedSandbox] = OrderedDict()
        self._locks = KeyedLocks()  # one per session key, only while a create is under way
        #: Sandbox ids released by eviction, most recent last (bounded; for operators and tests).
        self.evicted: list[str] = []

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def peek(self, key: str) -> str | None:
        """The session's sandbox id without touching its recency."""
        entry = self._entries.get(key)
        return entry.sandbox_id if entry else None

    def get(self, key: str) -> str | None:
        """The session's sandbox id (marking it most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry.sandbox_id

    async def get_or_create(self, key: str, backend: Backend) -> str:
        """The session's sandbox, creating it (and evicting beyond the bound) when there is none."""
        found = self.get(key)
        if found is not None:
            return found
        async with self._locks.hold(key):
            found = self.get(key)
            if found is not None:
                return found
            sandbox_id = await backend.create_sandbox(ttl=self.ttl, profile=self.profile)
            self._entries[key] = CachedSandbox(sandbox_id, backend)
            victims: list[tuple[str, CachedSandbox]] = []
            while len(self._entries) > self.max_size:
                victims.append(self._entries.popitem(last=False))
        for _old_key, entry in victims:
            await self._release(entry)
        return sandbox_id

    def forget(self, key: str, sandbox_id: str) -> None:
        """Drop the session's entry if it still names ``sandbox_id`` (the sandbox is gone already)."""
        entry = self._entries.get(key)
        if entry is not None and entry.sandbox_id == sandbox_id:
            del self._entries[key]

    async def _release(self, entry: CachedSandbox) -> None:
        try:
            if self.eviction == "stop":
                await entry.backend.stop_sandbox(entry.sandbox_id)
            else:
                await entry.backend.delete_sandbox(entry.sandbox_id)
        except Exception as exc:  # the sandbox may be gone already; eviction must not fail a call
            log.warning("could not %s evicted sandbox %s: %s", self.eviction, entry.sandbox_id, exc)
        self.evicted = [*self.evicted[-99:], entry.sandbox_id]
        log.info("evicted session sandbox %s (%s)", entry.sandbox_id, self.eviction)

    async def close(self) -> None:
        """Release every cached sandbox (the sessions end with the process)."""
        entries = list(self._entries.values())
        self._entries.clear()
        self._locks.clear()
        for entry in entries:
            await self._release(entry)
