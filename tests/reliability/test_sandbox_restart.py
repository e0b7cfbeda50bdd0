"""kill -9 of a real server process in the middle of an execution, then a restart on the same data dir."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY, free_port
from tests.reliability.server_process import server_process


def ok(r: httpx.Response) -> Any:
    assert r.status_code < 400, r.text
    return r.json() if r.content else None


def _parents() -> dict[int, int]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    parents = _parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    """The PIDs of ``pids`` still running (zombies count as gone)."""
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            out.add(pid)
    return out


def test_kill_9_mid_execution_then_restart(tmp_path: Path) -> None:
    data, log, port = tmp_path / "data", tmp_path / "server.log", free_port()
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}

    with server_process(data, port, log) as proc, httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        cargo = ok(c.post("/v1/cargos", json={"size_limit_mb": 64}))
        sb = ok(c.post("/v1/sandboxes", json={"cargo_id": cargo["id"], "ttl": 3600}))
        sid = sb["id"]
        base = f"/v1/sandboxes/{sid}"
        ok(c.put(f"{base}/filesystem/files", json={"path": "notes/a.txt", "content": "alpha"}))
        ok(c.post(f"{base}/filesystem/upload", data={"path": "blob.bin"}, files={"file": ("u", bytes(range(256)))}))
        py = ok(c.post(f"{base}/python/exec", json={"code": "x = 7\nopen('from_py.txt', 'w').write('py')"}))
        sh = ok(c.post(f"{base}/shell/exec", json={"command": "echo shell > from_sh.txt", "tags": "t1"}))
        assert py["success"] and sh["success"]
        ok(c.patch(f"{base}/history/{py['execution_id']}", json={"notes": "before crash"}))

        # A long execution in flight ...
        workspace = data.resolve() / "cargos" / cargo["id"]
        in_flight: dict[str, Any] = {}

        def long_exec() -> None:
            try:
                in_flight["response"] = c.post(
                    f"{base}/python/exec",
                    json={"code": "open('started', 'w').close()\nimport time\ntime.sleep(60)", "timeout": 120},
                )
            except httpx.HTTPError as exc:
                in_flight["error"] = exc

        worker = threading.Thread(target=long_exec)
        worker.start()
        deadline = time.monotonic() + 20
        while not (workspace / "started").exists():
            assert time.monotonic() < deadline, "the long execution never started"
            time.sleep(0.02)
        sandbox_pids = descendants(proc.pid)
        assert sandbox_pids, "expected the sandbox's processes below the server"

        # ... when the server is killed without a chance to clean up.
        proc.kill()
        proc.wait()
        worker.join(timeout=10)
        assert "error" in in_flight, in_flight  # the client saw the connection drop

        # The sandbox's processes die with the server (no orphaned kernels).
        deadline = time.monotonic() + 10
        while alive(sandbox_pids):
            assert time.monotonic() < deadline, f"orphaned sandbox processes: {alive(sandbox_pids)}"
            time.sleep(0.05)

    with server_process(data, port, log), httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        # The record survived; no runtime does, so the sandbox is idle.
        info = ok(c.get(base))
        assert (info["id"], info["cargo_id"], info["status"]) == (sid, cargo["id"], "idle")
        assert info["expires_at"] is not None
        assert sid in {s["id"] for s in ok(c.get("/v1/sandboxes"))["items"]}
        assert ok(c.get(f"/v1/cargos/{cargo['id']}"))["size_limit_mb"] == 64

        # Files of the cargo are intact, including what the killed execution wrote.
        assert ok(c.get(f"{base}/filesystem/files", params={"path": "notes/a.txt"}))["content"] == "alpha"
        assert c.get(f"{base}/filesystem/download", params={"path": "blob.bin"}).content == bytes(range(256))
        names = {e["name"] for e in ok(c.get(f"{base}/filesystem/directories"))["entries"]}
        assert {"notes", "blob.bin", "from_py.txt", "from_sh.txt", "started"} <= names

        # History: the completed executions with their annotations; the killed one never completed.
        history = ok(c.get(f"{base}/history"))
        assert history["total"] == 2
        assert [e["id"] for e in history["entries"]] == [sh["execution_id"], py["execution_id"]]
        assert ok(c.get(f"{base}/history/{py['execution_id']}"))["notes"] == "before crash"
        assert [e["id"] for e in ok(c.get(f"{base}/history", params={"tags": "t1"}))["entries"]] == [sh["execution_id"]]

        # The next execution starts a fresh runtime: files are there, Python variables are not.
        again = ok(c.post(f"{base}/python/exec", json={"code": "print(open('from_py.txt').read())\nx"}))
        assert again["output"] == "py\n" and again["success"] is False and "NameError" in again["error"]
        assert ok(c.get(base))["status"] == "ready"
        assert ok(c.post(f"{base}/shell/exec", json={"command": "cat from_sh.txt"}))["output"] == "shell\n"
        assert ok(c.get(f"{base}/history"))["total"] == 4

        # And the usual lifecycle still works on the recovered records.
        assert c.delete(f"/v1/cargos/{cargo['id']}").status_code == 409
        assert c.delete(base).status_code == 204
        assert c.delete(f"/v1/cargos/{cargo['id']}").status_code == 204
