"""A warm pool: sandboxes started ahead of time (kernel ready) so that creating one is a rename.

How a pooled sandbox gets its workspace: each pooled sandbox is started on a private *slot* directory under
``<pool_root>/slots/``. Bind mounts follow the directory inode, so at acquire time the pool renames the slot
directory to the workspace path the service chose; the sandbox keeps seeing it at ``/workspace`` and the
service finds it where it wants it. This needs the target path not to exist (or be an empty directory) and to
be on the same filesystem as ``pool_root``. Anything else, e.g. a cargo volume that already holds data, or a
profile that is not kept warm, is started cold (about half a second). Refills run in the background, one start
at a time (the host has few cores).

With size-limited volumes (see :mod:`.volumes`) each slot is a volume of the profile's ``disk_mb``, created
before its sandbox starts; the pool then hands the volume over with :meth:`Volumes.move` (a mount point cannot
be renamed: the filesystem is mounted again at the target and dropped at the slot), so a warm create stays a
few syscalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .base import Resources, SandboxDriver, SandboxHandle, SandboxSpec
from .volumes import PlainVolumes, Volumes

log = logging.getLogger(__name__)


@dataclass
class _Profile:
    template: SandboxSpec
    size: int
    ready: deque[SandboxHandle] = field(default_factory=deque)
    starting: int = 0


class WarmPool:
    """Keeps ``size`` started sandboxes per registered profile and hands them out on :meth:`acquire`."""

    def __init__(self, driver: SandboxDriver, pool_root: Path, size: int = 2, volumes: Volumes | None = None) -> None:
        self.driver = driver
        self.volumes = volumes or PlainVolumes()
        self.pool_root = pool_root
        self.slots = pool_root / "slots"
        self.default_size = size
        self._profiles: dict[str, _Profile] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.hits = 0
        self.misses = 0

    def add_profile(
        self, resources: Resources | None = None, env: dict[str, str] | None = None, size: int | None = None
    ) -> str:
        """Keep sandboxes with these resources and env warm; returns the profile key."""
        template = SandboxSpec(
            sandbox_id="pool", workspace=self.slots, resources=resources or Resources(), env=env or {}
        )
        key = template.profile_key()
        if key not in self._profiles:
            self._profiles[key] = _Profile(template, self.default_size if size is None else size)
        elif size is not None:
            self._profiles[key].size = size
        self._wake.set()
        return key

    async def start(self) -> None:
        """Start the background refill task."""
        if self._task is None and self.slots.is_dir():
            # Slots are pool-private: anything there now was left by a previous run.
            await asyncio.to_thread(self._sweep_slots)
        self.slots.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refill_loop())
            self._wake.set()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every profile is full (for tests, benchmarks and startup)."""

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(len(p.ready) < p.size for p in self._profiles.values()):
            if loop.time() > deadline:
                raise TimeoutError("warm pool did not fill in time")
            await asyncio.sleep(0.02)

    def _sweep_slots(self) -> None:
        for entry in list(self.slots.iterdir()):
            if not entry.name.startswith("."):
                self.volumes.destroy(entry)
        shutil.rmtree(self.slots, ignore_errors=True)

    def ready_count(self, key: str | None = None) -> int:
        """How many warm sandboxes are waiting (for one profile key, or in total)."""
        if key is not None:
            prof = self._profiles.get(key)
            return len(prof.ready) if prof else 0
        return sum(len(p.ready) for p in self._profiles.values())

    async def _refill_loop(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            for prof in list(self._profiles.values()):
                while not self._closed and len(prof.ready) + prof.starting < prof.size:
                    prof.starting += 1
                    try:
                        handle = await self._start_one(prof)
                    except Exception:
                        log.exception("warm pool: could not start a sandbox")
                        await asyncio.sleep(1.0)
                        self._wake.set()
                        break
                    finally:
                        prof.starting -= 1
                    if self._closed:
                        await self._discard(handle)
                        return
                    prof.ready.append(handle)

    async def _start_one(self, prof: _Profile) -> SandboxHandle:
        slot = self.slots / secrets.token_hex(6)
        spec = prof.template.model_copy(update={"sandbox_id": f"pool-{slot.name}", "workspace": slot})
        try:
            disk_mb = prof.template.resources.disk_mb
            if disk_mb is not None:
                await asyncio.to_thread(self.volumes.create, slot, disk_mb)
            else:
                slot.mkdir(mode=0o755)
            return await self.driver.start(spec)
        except BaseException:
            await asyncio.to_thread(self.volumes.destroy, slot)
            raise

    async def _discard(self, handle: SandboxHandle) -> None:
        await handle.stop()
        await asyncio.to_thread(self.volumes.destroy, handle.workspace)

    def _move_slot(self, slot: Path, target: Path) -> bool:
        try:
            return self.volumes.move(slot, target)
        except OSError as exc:
            log.warning("warm pool: cannot move %s to %s: %s", slot, target, exc)
            return False

    async def acquire(self, spec: SandboxSpec) -> SandboxHandle:
        """A running sandbox for ``spec``: a warm one if possible (milliseconds), else a cold start.

        The workspace directory is created if needed.
        """
        handle = await self.try_acquire(spec)
        if handle is not None:
            return handle
        await asyncio.to_thread(self.volumes.mount, spec.workspace)
        return await self.driver.start(spec)

    async def try_acquire(self, spec: SandboxSpec) -> SandboxHandle | None:
        """A warm sandbox adopted for ``spec``, or None when none fits (then start one cold)."""
        prof = self._profiles.get(spec.profile_key())
        while prof is not None and prof.ready:
            handle = prof.ready.popleft()
            self._wake.set()
            if not handle.alive:
                await self._discard(handle)
                continue
            slot = handle.workspace
            if not self._move_slot(slot, spec.workspace):
                prof.ready.appendleft(handle)
                break
            try:
                await handle.adopt(spec.sandbox_id, spec.workspace)
            except Exception:
                log.exception("warm pool: adopting a sandbox failed; starting cold")
                await handle.stop()
                break
            self.hits += 1
            return handle
        self.misses += 1
        return None

    async def close(self) -> None:
        """Stop the refill task and every waiting sandbox (acquired ones belong to the caller)."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for prof in self._profiles.values():
            while prof.ready:
                await self._discard(prof.ready.popleft())
