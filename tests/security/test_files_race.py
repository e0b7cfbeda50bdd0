"""Files API against a sandbox that flips a workspace directory <-> symlink to a host directory in a tight loop.

A process inside a real bwrap sandbox renames ``rd`` (and ``.browser/traces/t1``) aside and puts a symlink to a
canary directory OUTSIDE the workspace in its place, then back, as fast as it can. The symlink targets are
host paths (absolute, and relative ones that climb out of the cargo directory), which mean nothing inside the
sandbox but everything to a server that follows them on the host. Meanwhile the test drives every files
operation (read, download, list, write with ``mkdir -p``, upload, delete of files and trees, the browser
trace read) against paths through the flipping entries for at least ten seconds, then checks that the canary
was never read, listed, written or deleted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, LiveServer, make_settings

CANARY = "CANARY-0f1e2d3c-host-secret"
MARKER = "canary-marker-7b6a"
DURATION = 10.0

FLIPPER = r"""
import os, shutil, sys
SLOTS = [
    ("rd", [ABS, "../../../canary"]),
    (".browser/traces/t1", [ABS, "../../../../../canary"]),
]
FILES = {"x": "real x", "sub/y": "real y", "trace.json": '{"real": true}'}

def fill(d):
    os.makedirs(os.path.join(d, "sub"), exist_ok=True)
    for rel, data in FILES.items():
        p = os.path.join(d, rel)
        if not os.path.lexists(p):
            with open(p, "w") as fh:
                fh.write(data)

def flip(slot, target, refill):
    real = slot + ".real"
    try:
        if os.path.isdir(slot) and not os.path.islink(slot):
            if os.path.lexists(real):
                shutil.rmtree(real, ignore_errors=True)
            if refill:
                fill(slot)
            os.rename(slot, real)
        elif not os.path.lexists(real):
            fill(real)
        if not os.path.lexists(slot):
            os.symlink(target, slot)
    except OSError:
        pass
    try:
        if os.path.islink(slot):
            os.unlink(slot)
        if not os.path.lexists(slot):
            os.rename(real, slot)
    except OSError:
        pass

os.makedirs(".browser/traces", exist_ok=True)
for slot, _ in SLOTS:
    fill(slot)
open("flipper.ready", "w").close()
i = 0
while True:
    for slot, targets in SLOTS:
        flip(slot, targets[i % 2], i % 16 == 0)
    i += 1
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("race") / "data"
    live = LiveServer(make_settings(data)).start()
    try:
        yield live
    finally:
        live.stop()


def _canary(server: LiveServer) -> Path:
    """The canary lives next to the data dir: ``<cargo>/../../../canary`` on the host."""
    root: Path = server.settings.data_dir.resolve().parent / "canary"
    (root / "sub").mkdir(parents=True)
    (root / "x").write_text(CANARY)
    (root / "sub" / "y").write_text(CANARY)
    (root / "trace.json").write_text(json.dumps({"canary": CANARY}))
    (root / MARKER).write_text(CANARY)
    return root


def _snapshot(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        st = p.lstat()
        out[rel] = ("dir", st.st_mtime_ns) if p.is_dir() else (p.read_bytes(), st.st_mtime_ns, st.st_ino)
    return out


def test_files_api_never_follows_a_flipping_symlink(server: LiveServer) -> None:
    canary = _canary(server)
    before = _snapshot(canary)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        created = http.post("/v1/sandboxes", json={"ttl": 600, "profile": "browser-python"})
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        try:
            code = FLIPPER.replace("ABS", repr(str(canary)))
            start = (
                "import subprocess, sys\n"
                f"subprocess.Popen([sys.executable, '-c', {code!r}], start_new_session=True,"
                " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            )
            r = http.post(f"/v1/sandboxes/{sid}/python/exec", json={"code": start})
            assert r.status_code == 200 and r.json()["success"], r.text
            ready = http.post(
                f"/v1/sandboxes/{sid}/shell/exec",
                json={"command": "for i in $(seq 100); do [ -e flipper.ready ] && exit 0; sleep 0.1; done; exit 1"},
            )
            assert ready.json()["exit_code"] == 0, ready.text
            escapes, errors, counts = _drive(http, sid)
        finally:
            http.delete(f"/v1/sandboxes/{sid}")
    after = _snapshot(canary)
    assert not escapes, f"{len(escapes)} responses leaked the canary, e.g. {escapes[:3]}"
    assert after == before, "the canary directory on the host was changed through the files API"
    assert not errors, f"{len(errors)} server errors, e.g. {errors[:3]}"
    # Every kind of operation really ran, and some of them landed on the real directory.
    assert set(counts) == {"read", "download", "list", "write", "mkdir", "upload", "delete", "trace"}, counts


def _drive(http: httpx.Client, sid: str) -> tuple[list[str], list[str], dict[str, int]]:
    """Drive every files operation through the flipping entries for DURATION seconds."""
    base = f"/v1/sandboxes/{sid}/filesystem"
    trace = f"/v1/sandboxes/{sid}/browser/traces/.browser/traces/t1/trace.json"
    escapes: list[str] = []
    errors: list[str] = []
    counts: dict[str, int] = {}
    deadline = time.monotonic() + DURATION
    i = 0
    while time.monotonic() < deadline:
        i += 1
        ops: list[tuple[str, httpx.Response]] = [
            ("read", http.get(f"{base}/files", params={"path": "rd/x"})),
            ("read", http.get(f"{base}/files", params={"path": "rd/sub/y"})),
            ("download", http.get(f"{base}/download", params={"path": "rd/x"})),
            ("list", http.get(f"{base}/directories", params={"path": "rd"})),
            ("list", http.get(f"{base}/directories", params={"path": "rd/sub"})),
            ("write", http.put(f"{base}/files", json={"path": f"rd/w{i}.txt", "content": "w"})),
            ("mkdir", http.put(f"{base}/files", json={"path": f"rd/sub/d{i}/w.txt", "content": "m"})),
            ("upload", http.post(f"{base}/upload", data={"path": f"rd/u{i}.bin"}, files={"file": ("u", b"u")})),
            ("delete", http.delete(f"{base}/files", params={"path": "rd/x"})),
            ("delete", http.delete(f"{base}/files", params={"path": "rd/sub"})),
            ("trace", http.get(trace)),
        ]
        for name, r in ops:
            if r.status_code >= 500:
                errors.append(f"{name} {r.request.url}: {r.status_code} {r.text[:200]}")
            if r.status_code < 300:
                counts[name] = counts.get(name, 0) + 1
            if CANARY in r.text or MARKER in r.text:
                escapes.append(f"{name} {r.request.url}: {r.text[:200]}")
    return escapes, errors, counts
