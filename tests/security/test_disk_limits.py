"""Disk limits: a sandbox that writes past its workspace or cargo limit gets ENOSPC and the host disk is untouched.

Real bwrap sandboxes behind the real app (ASGI transport, SQLite). Each cargo is a loop-mounted ext4 image
(see ``drivers/volumes.py``); these tests need root and loop devices, as the server does to enforce limits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from portside.server.app import create_app
from portside.server.sandboxes.drivers import Resources
from portside.server.sandboxes.drivers.volumes import LoopVolumes, image_of, open_volumes
from portside.server.sandboxes.profiles import (
    CAPABILITY_FILESYSTEM,
    CAPABILITY_PYTHON,
    CAPABILITY_SHELL,
    Profile,
)
from portside.server.sandboxes.service import SandboxService
from portside.server.settings import Settings
from tests.conftest import ADMIN_KEY, make_settings

MB = 1024 * 1024
WORKSPACE_MB = 64
OVERHEAD = 4 * MB  # filesystem metadata a full image may hold beyond its limit

with tempfile.TemporaryDirectory() as _probe_dir:
    _ENFORCED = open_volumes(Path(_probe_dir)).enforced
pytestmark = pytest.mark.skipif(not _ENFORCED, reason="needs root and loop devices")

WRITE_PY = f"""
import errno
written = 0
try:
    with open('/workspace/big.bin', 'wb') as fh:
        chunk = b'x' * (1024 * 1024)
        for _ in range({2 * WORKSPACE_MB}):
            fh.write(chunk)
            fh.flush()
            written += len(chunk)
        import os
        os.fsync(fh.fileno())
    outcome = 'no error'
except OSError as exc:
    outcome = errno.errorcode.get(exc.errno, str(exc.errno))
(outcome, written)
"""


def _ok(r: httpx.Response) -> Any:
    assert r.status_code < 400, r.text
    return r.json() if r.content else None


def _settings(data: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"sandbox_reaper_interval": 0.2}
    values.update(overrides)
    return make_settings(data, **values)


class Portside:
    """The app with its lifespan running, an admin client and the sandbox service."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app, self.c = app, client
        self.svc: SandboxService = app.state.ctx.services["sandboxes"]
        self.svc.profiles.add(
            Profile(
                id="disk-test",
                description="a small workspace",
                capabilities=(CAPABILITY_PYTHON, CAPABILITY_SHELL, CAPABILITY_FILESYSTEM),
                resources=Resources(disk_mb=WORKSPACE_MB),
            )
        )

    async def shell(self, sid: str, command: str) -> dict[str, Any]:
        out: dict[str, Any] = _ok(await self.c.post(f"/v1/sandboxes/{sid}/shell/exec", json={"command": command}))
        return out

    async def python(self, sid: str, code: str) -> str:
        out = _ok(await self.c.post(f"/v1/sandboxes/{sid}/python/exec", json={"code": code, "timeout": 120}))
        assert out["success"], out
        return str(out["data"]["output"]["text"])


async def _portside(settings: Settings) -> AsyncIterator[Portside]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://portside.test",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=180,
        ) as client:
            yield Portside(app, client)


@pytest.fixture
async def ps(tmp_path: Path) -> AsyncIterator[Portside]:
    async for p in _portside(_settings(tmp_path / "data")):
        yield p


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line.split()[4] for line in lines if line.split()[4].startswith(prefix)]


def _loops_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if backing.read_text().startswith(prefix):
                found.append(backing.parent.parent.name)
        except OSError:
            continue
    return found


async def _eventually(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


def _disk_bytes(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _kill_agent(ps: Portside, sid: str) -> None:
    """kill -9 every process inside the sandbox (agent and kernel), as an OOM kill of them would."""
    handle = ps.svc.runtimes.get(sid)
    assert handle is not None
    proc = handle._proc  # type: ignore[attr-defined]
    inside = _descendants(proc.pid)
    assert inside, "the sandbox has no processes"
    for pid in inside:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def test_workspace_write_past_limit_is_enospc(ps: Portside) -> None:
    sb = _ok(await ps.c.post("/v1/sandboxes", json={"profile": "disk-test", "ttl": 600}))
    sid, cargo_id = sb["id"], sb["cargo_id"]
    cargo = _ok(await ps.c.get(f"/v1/cargos/{cargo_id}"))
    assert cargo["size_limit_mb"] == WORKSPACE_MB

    result = await ps.python(sid, WRITE_PY)
    assert result.startswith("('ENOSPC'"), result
    written = int(result.rsplit(",", 1)[1].strip(" )"))
    assert (WORKSPACE_MB - 2) * MB <= written <= WORKSPACE_MB * MB

    dd = await ps.shell(sid, f"dd if=/dev/zero of=/workspace/more.bin bs=1M count={2 * WORKSPACE_MB}")
    assert "No space left on device" in dd["error"]

    ws = ps.svc.workspace(cargo_id)
    assert _disk_bytes(image_of(ws)) <= WORKSPACE_MB * MB + OVERHEAD
    listing = await ps.shell(sid, "ls -A /workspace; stat -c '%U %a' /workspace")
    assert "lost+found" not in listing["output"]
    assert listing["output"].strip().endswith("sandbox 755")

    # The files API writing into a full volume: a clean 413, not a 500.
    r = await ps.c.put(f"/v1/sandboxes/{sid}/filesystem/files", json={"path": "late.txt", "content": "x" * 4096})
    assert r.status_code == 413 and r.json()["error"]["code"] == "cargo_size_exceeded", r.text

    # Freeing space inside gives it back (to the sandbox, and to the host: deleted blocks are discarded).
    await ps.shell(sid, "rm /workspace/big.bin /workspace/more.bin && sync")
    # ext4 discards freed blocks after its journal commits
    assert await _eventually(lambda: _disk_bytes(image_of(ws)) < 8 * MB, 20), _disk_bytes(image_of(ws))
    assert (await ps.shell(sid, "head -c 1048576 /dev/zero > /workspace/ok.bin"))["exit_code"] == 0

    _ok(await ps.c.delete(f"/v1/sandboxes/{sid}"))
    assert not ws.exists() and not image_of(ws).exists()
    assert _mounts_under(ws.parent) == [] and _loops_under(ws.parent) == []


async def test_cargo_volume_keeps_its_own_limit(ps: Portside) -> None:
    cargo = _ok(await ps.c.post("/v1/cargos", json={"size_limit_mb": 48}))
    first = _ok(await ps.c.post("/v1/sandboxes", json={"cargo_id": cargo["id"]}))
    dd = await ps.shell(first["id"], "echo kept > keep.txt; dd if=/dev/zero of=/workspace/fill bs=1M count=200")
    assert "No space left on device" in dd["error"]
    ws = ps.svc.workspace(cargo["id"])
    assert _disk_bytes(image_of(ws)) <= 48 * MB + OVERHEAD
    _ok(await ps.c.delete(f"/v1/sandboxes/{first['id']}"))
    assert ws.is_dir()  # an external cargo outlives its sandbox

    second = _ok(await ps.c.post("/v1/sandboxes", json={"cargo_id": cargo["id"], "profile": "disk-test"}))
    out = await ps.shell(second["id"], "cat keep.txt; rm fill; dd if=/dev/zero of=/workspace/again bs=1M count=100")
    assert out["output"].startswith("kept") and "No space left on device" in out["error"]
    _ok(await ps.c.delete(f"/v1/sandboxes/{second['id']}"))
    _ok(await ps.c.delete(f"/v1/cargos/{cargo['id']}"))
    assert not ws.exists() and not image_of(ws).exists()
    assert _mounts_under(ws.parent) == [] and _loops_under(ws.parent) == []


async def test_delete_after_agent_killed_removes_mount_loop_and_image(ps: Portside) -> None:
    sb = _ok(await ps.c.post("/v1/sandboxes", json={"profile": "disk-test"}))
    await ps.shell(sb["id"], "head -c 10485760 /dev/urandom > /workspace/data.bin")
    ws = ps.svc.workspace(sb["cargo_id"])
    assert _mounts_under(ws) and _loops_under(ws.parent)
    _kill_agent(ps, sb["id"])
    _ok(await ps.c.delete(f"/v1/sandboxes/{sb['id']}"))
    assert not ws.exists() and not image_of(ws).exists()
    assert _mounts_under(ws.parent) == [] and _loops_under(ws.parent) == []


async def test_expiry_after_agent_killed_removes_the_workspace(ps: Portside) -> None:
    sb = _ok(await ps.c.post("/v1/sandboxes", json={"profile": "disk-test", "ttl": 2}))
    await ps.shell(sb["id"], "head -c 10485760 /dev/urandom > /workspace/data.bin")
    ws = ps.svc.workspace(sb["cargo_id"])
    _kill_agent(ps, sb["id"])
    deadline = time.monotonic() + 30
    while _ok(await ps.c.get(f"/v1/sandboxes/{sb['id']}"))["status"] != "expired":
        assert time.monotonic() < deadline, "the reaper did not expire the sandbox"
        await asyncio.sleep(0.2)
    assert await _eventually(lambda: not ws.exists(), 10)
    assert not ws.exists() and not image_of(ws).exists()
    assert _mounts_under(ws.parent) == [] and _loops_under(ws.parent) == []
    _ok(await ps.c.delete(f"/v1/sandboxes/{sb['id']}"))  # an expired sandbox can still be deleted


async def test_warm_pool_sandbox_is_limited_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async for ps in _portside(_settings(data, sandbox_warm_pool=1, sandbox_default_cargo_mb=WORKSPACE_MB)):
        pool = ps.svc.runtimes.pool
        assert pool is not None
        await pool.wait_ready(120)  # type: ignore[attr-defined]
        sb = _ok(await ps.c.post("/v1/sandboxes", json={}))
        assert pool.hits == 1  # type: ignore[attr-defined]
        result = await ps.python(sb["id"], WRITE_PY)
        assert result.startswith("('ENOSPC'"), result
        assert "lost+found" not in (await ps.shell(sb["id"], "ls -A /workspace"))["output"]
        _ok(await ps.c.delete(f"/v1/sandboxes/{sb['id']}"))
    # Shutdown leaves no mount or loop device behind (the pool's slots included).
    assert _mounts_under(data) == [] and _loops_under(data) == []


async def test_restart_serves_the_workspace_and_keeps_the_limit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async for ps in _portside(_settings(data)):
        sb = _ok(await ps.c.post("/v1/sandboxes", json={"profile": "disk-test"}))
        sid = sb["id"]
        await ps.shell(sid, "echo before-restart > note.txt")
    assert _mounts_under(data) == []  # unmounted at shutdown, mounted again on demand

    async for ps in _portside(_settings(data)):
        base = f"/v1/sandboxes/{sid}"
        got = _ok(await ps.c.get(f"{base}/filesystem/files", params={"path": "note.txt"}))
        assert got["content"] == "before-restart\n"
        out = await ps.shell(sid, f"cat note.txt; dd if=/dev/zero of=/workspace/big bs=1M count={2 * WORKSPACE_MB}")
        assert out["output"].startswith("before-restart") and "No space left on device" in out["error"]
        _ok(await ps.c.delete(base))
    assert _mounts_under(data) == [] and _loops_under(data) == []


async def test_fallback_without_loop_devices_is_loud(tmp_path: Path) -> None:
    async for ps in _portside(_settings(tmp_path / "data", sandbox_disk_limits=False)):
        checks = _ok(await ps.c.get("/v1/ready"))["checks"]
        assert checks["sandbox_driver"]["disk_limits"]["enforced"] is False
        warnings = _ok(await ps.c.get("/v1/health"))["warnings"]
        assert any("disk limits are NOT enforced" in w for w in warnings)
    async for ps in _portside(_settings(tmp_path / "data2")):
        checks = _ok(await ps.c.get("/v1/ready"))["checks"]
        assert checks["sandbox_driver"]["disk_limits"] == {"enforced": True, "backend": "loop-ext4"}


def test_mounts_left_by_a_dead_server_are_adopted_and_released(tmp_path: Path) -> None:
    """A server killed with -9 leaves its cargo mounts; the next one reuses them and releases them at shutdown."""
    cargos = tmp_path / "cargos"
    dead = LoopVolumes(tmp_path / "templates")
    dead.create(cargos / "cargo_a", 8)
    (cargos / "cargo_a" / "kept.txt").write_text("kept")
    # ... the process dies here without close(): the mount stays.
    fresh = LoopVolumes(tmp_path / "templates")
    assert fresh.adopt_mounts(cargos) == 1 and fresh.is_mounted(cargos / "cargo_a")
    assert (cargos / "cargo_a" / "kept.txt").read_text() == "kept"
    fresh.close()
    assert _mounts_under(tmp_path) == [] and _loops_under(tmp_path) == []
    fresh.mount(cargos / "cargo_a")
    assert (cargos / "cargo_a" / "kept.txt").read_text() == "kept"
    fresh.destroy(cargos / "cargo_a")
    assert not (cargos / "cargo_a").exists() and _loops_under(tmp_path) == []
