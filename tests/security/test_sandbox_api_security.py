"""Escapes through the sandbox HTTP API: path traversal, planted symlinks, cross-sandbox and cross-owner access.

Lower-level escapes from inside a running sandbox (mounts, namespaces, limits) are the driver's tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, LiveServer, make_settings

SECRET = "top-secret-of-b"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("sec") / "data"
    live = LiveServer(make_settings(data)).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60) as c:
        yield c


def _ok(r: httpx.Response) -> Any:
    assert r.status_code < 400, r.text
    return r.json() if r.content else None


@pytest.fixture(scope="module")
def pair(http: httpx.Client) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Two sandboxes of one owner; B holds a secret file."""
    a = _ok(http.post("/v1/sandboxes", json={"ttl": 600}))
    b = _ok(http.post("/v1/sandboxes", json={"ttl": 600}))
    _ok(http.put(f"/v1/sandboxes/{b['id']}/filesystem/files", json={"path": "secret.txt", "content": SECRET}))
    yield a, b
    for sb in (a, b):
        http.delete(f"/v1/sandboxes/{sb['id']}")


def _code(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


def _shell(http: httpx.Client, sid: str, command: str) -> dict[str, Any]:
    result: dict[str, Any] = _ok(http.post(f"/v1/sandboxes/{sid}/shell/exec", json={"command": command}))
    return result


TRAVERSALS = [
    "../secret.txt",
    "../../../../etc/passwd",
    "/etc/passwd",
    "/workspace/../etc/passwd",
    "a/b/../../../x",
    "//etc/passwd",
    "./../x",
    "bad\x00name",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_refused_on_every_file_route(http: httpx.Client, pair: Any, path: str) -> None:
    a, _ = pair
    base = f"/v1/sandboxes/{a['id']}/filesystem"
    responses = [
        http.get(f"{base}/files", params={"path": path}),
        http.put(f"{base}/files", json={"path": path, "content": "pwned"}),
        http.delete(f"{base}/files", params={"path": path}),
        http.get(f"{base}/directories", params={"path": path}),
        http.get(f"{base}/download", params={"path": path}),
        http.post(f"{base}/upload", data={"path": path}, files={"file": ("upload", b"pwned")}),
    ]
    for r in responses:
        assert (r.status_code, _code(r)) == (400, "invalid_path"), (r.request.method, r.request.url, r.text)
    r = http.post(f"/v1/sandboxes/{a['id']}/shell/exec", json={"command": "pwd", "cwd": path})
    assert (r.status_code, _code(r)) == (400, "invalid_path")


def test_symlink_to_etc_planted_inside_the_sandbox(http: httpx.Client, pair: Any) -> None:
    a, _ = pair
    sid = a["id"]
    base = f"/v1/sandboxes/{sid}/filesystem"
    made = _shell(http, sid, "ln -s /etc etc_link && ln -s /etc/passwd passwd_link && ln -s ../../.. up_link && ls")
    assert made["exit_code"] == 0, made
    for path in ("etc_link/passwd", "passwd_link", "up_link/etc/passwd", "etc_link/hostname"):
        for r in (
            http.get(f"{base}/files", params={"path": path}),
            http.get(f"{base}/download", params={"path": path}),
        ):
            assert (r.status_code, _code(r)) == (400, "invalid_path"), (path, r.text)
            assert "root:" not in r.text
    for path in ("etc_link", "up_link"):
        r = http.get(f"{base}/directories", params={"path": path})
        assert (r.status_code, _code(r)) == (400, "invalid_path")
    # Writes through a planted link are refused and land nowhere.
    r = http.put(f"{base}/files", json={"path": "etc_link/portside-pwned", "content": "x"})
    assert (r.status_code, _code(r)) == (400, "invalid_path")
    assert not Path("/etc/portside-pwned").exists()
    # Deleting a link removes the link, never its target.
    assert http.delete(f"{base}/files", params={"path": "etc_link"}).status_code == 200
    assert Path("/etc/passwd").exists()
    names = {e["name"] for e in _ok(http.get(f"{base}/directories", params={"path": "."}))["entries"]}
    assert "etc_link" not in names and {"passwd_link", "up_link"} <= names
    # Listing shows links as entries without following them.
    entry = next(e for e in _ok(http.get(f"{base}/directories"))["entries"] if e["name"] == "up_link")
    assert entry["is_dir"] is False


def test_symlink_to_another_sandboxs_cargo(http: httpx.Client, pair: Any, server: LiveServer) -> None:
    a, b = pair
    host_b = server.settings.data_dir.resolve() / "cargos" / b["cargo_id"]
    assert (host_b / "secret.txt").read_text() == SECRET
    base = f"/v1/sandboxes/{a['id']}/filesystem"
    # Even with B's host path known, a link to it does not resolve for A's file API ...
    _shell(http, a["id"], f"ln -sf {host_b} b_link && ln -sf ../{b['cargo_id']} b_rel")
    for path in ("b_link/secret.txt", "b_rel/secret.txt", f"../{b['cargo_id']}/secret.txt"):
        r = http.get(f"{base}/files", params={"path": path})
        assert (r.status_code, _code(r)) == (400, "invalid_path"), r.text
        assert SECRET not in r.text
    # ... and inside A the host path of B's cargo does not exist.
    for target in (f"{host_b}/secret.txt", "b_link/secret.txt", "b_rel/secret.txt"):
        inside = _shell(http, a["id"], f"cat {target}")
        assert inside["exit_code"] != 0 and SECRET not in inside["output"], inside
    # A's own workspace does not show B's files.
    r = http.get(f"{base}/files", params={"path": "secret.txt"})
    assert (r.status_code, _code(r)) == (404, "file_not_found")


def test_other_owner_cannot_touch_a_sandbox(http: httpx.Client, pair: Any, server: LiveServer) -> None:
    _, b = pair
    created = _ok(http.post("/v1/keys", json={"name": "mallory", "scopes": ["read", "write"]}))
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {created['key']}"}) as mallory:
        sid = b["id"]
        attempts = [
            mallory.get(f"/v1/sandboxes/{sid}"),
            mallory.get(f"/v1/sandboxes/{sid}/filesystem/files", params={"path": "secret.txt"}),
            mallory.get(f"/v1/sandboxes/{sid}/filesystem/download", params={"path": "secret.txt"}),
            mallory.get(f"/v1/sandboxes/{sid}/filesystem/directories"),
            mallory.put(f"/v1/sandboxes/{sid}/filesystem/files", json={"path": "x", "content": "y"}),
            mallory.post(f"/v1/sandboxes/{sid}/python/exec", json={"code": "print(open('secret.txt').read())"}),
            mallory.post(f"/v1/sandboxes/{sid}/shell/exec", json={"command": "cat secret.txt"}),
            mallory.get(f"/v1/sandboxes/{sid}/history"),
            mallory.post(f"/v1/sandboxes/{sid}/stop"),
            mallory.delete(f"/v1/sandboxes/{sid}"),
            mallory.get(f"/v1/cargos/{b['cargo_id']}"),
            mallory.delete(f"/v1/cargos/{b['cargo_id']}"),
            mallory.post("/v1/sandboxes", json={"cargo_id": b["cargo_id"]}),
        ]
        for r in attempts:
            assert (r.status_code, _code(r)) == (404, "not_found"), (r.request.method, r.request.url, r.text)
            assert SECRET not in r.text
        assert sid not in {s["id"] for s in _ok(mallory.get("/v1/sandboxes"))["items"]}
        assert _ok(mallory.get("/v1/cargos", params={"managed": "true"}))["items"] == []
    # B is untouched.
    assert _ok(http.get(f"/v1/sandboxes/{sid}/filesystem/files", params={"path": "secret.txt"}))["content"] == SECRET


def test_read_only_key_cannot_change_anything(http: httpx.Client, pair: Any, server: LiveServer) -> None:
    a, _ = pair
    reader = _ok(http.post("/v1/keys", json={"name": "ro", "scopes": ["read"], "owner": "admin"}))
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {reader['key']}"}) as ro:
        sid = a["id"]
        assert ro.get(f"/v1/sandboxes/{sid}").status_code == 200  # same owner: may read
        for r in (
            ro.post(f"/v1/sandboxes/{sid}/shell/exec", json={"command": "true"}),
            ro.put(f"/v1/sandboxes/{sid}/filesystem/files", json={"path": "x", "content": "y"}),
            ro.delete(f"/v1/sandboxes/{sid}/filesystem/files", params={"path": "x"}),
            ro.delete(f"/v1/sandboxes/{sid}"),
            ro.post("/v1/cargos"),
        ):
            assert (r.status_code, _code(r)) == (403, "forbidden"), r.text
    with httpx.Client(base_url=server.url) as anonymous:
        r = anonymous.get(f"/v1/sandboxes/{a['id']}")
        assert (r.status_code, _code(r)) == (401, "unauthorized")
