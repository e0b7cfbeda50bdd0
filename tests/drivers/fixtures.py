"""Fixtures for real sandboxes (bubblewrap + ipykernel); imported by the drivers and security conftests."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from portside.server.sandboxes.drivers import Resources, SandboxHandle, SandboxSpec
from portside.server.sandboxes.drivers.bwrap import BwrapDriver

_BWRAP_OK: bool | None = None


def bwrap_usable() -> bool:
    global _BWRAP_OK
    if _BWRAP_OK is None:
        _BWRAP_OK = BwrapDriver.available()
    return _BWRAP_OK


def require_bwrap() -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed: isolated sandbox tests need it")
    if not bwrap_usable():
        pytest.skip("bwrap cannot create user namespaces on this host (unprivileged userns disabled?)")


@pytest.fixture
def bwrap_driver() -> BwrapDriver:
    require_bwrap()
    return BwrapDriver()


StartSandbox = Callable[..., Awaitable[SandboxHandle]]


@pytest.fixture
async def start_sandbox(bwrap_driver: BwrapDriver, tmp_path: Path) -> AsyncIterator[StartSandbox]:
    """Factory: start a bwrap sandbox on a fresh workspace; all are stopped at teardown."""
    handles: list[SandboxHandle] = []

    async def start(name: str = "sbx", resources: Resources | None = None, **kw: object) -> SandboxHandle:
        ws = tmp_path / f"ws-{name}-{len(handles)}"
        ws.mkdir()
        spec = SandboxSpec(sandbox_id=f"sbx_{name}", workspace=ws, resources=resources or Resources(), **kw)
        handle = await bwrap_driver.start(spec)
        handles.append(handle)
        return handle

    try:
        yield start
    finally:
        for handle in handles:
            await handle.stop()


@pytest.fixture
async def sandbox(start_sandbox: StartSandbox) -> SandboxHandle:
    """One running bwrap sandbox with default resources."""
    return await start_sandbox()
