"""Workspace path confinement and directory usage (no sandbox needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portside.server.errors import InvalidInput
from portside.server.sandboxes.drivers import directory_usage, resolve_in_workspace, sandbox_path


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "f.txt").write_text("x")
    return root


@pytest.mark.parametrize(
    ("user", "rel"),
    [
        ("app.py", "app.py"),
        ("./a/b", "a/b"),
        ("/workspace/a", "a"),
        ("/workspace", ""),
        ("/workspace/", ""),
        ("", ""),
        (".", ""),
        ("a/../a/f.txt", "a/f.txt"),
        ("a//b/", "a/b"),
        ("new/dir/file.txt", "new/dir/file.txt"),
    ],
)
def test_accepted(ws: Path, user: str, rel: str) -> None:
    expected = ws.resolve() / rel if rel else ws.resolve()
    assert resolve_in_workspace(ws, user) == expected


@pytest.mark.parametrize(
    "user",
    ["..", "../x", "a/../../x", "/etc/passwd", "/", "/workspace/../etc", "/workspacex/a", "a\x00b", "//etc"],
)
def test_refused(ws: Path, user: str) -> None:
    with pytest.raises(InvalidInput) as info:
        resolve_in_workspace(ws, user)
    assert info.value.code == "invalid_path"


def test_symlink_escapes_refused(ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key").write_text("s")
    os.symlink(outside, ws / "out")
    os.symlink("/etc/passwd", ws / "a" / "pw")
    os.symlink("../../..", ws / "a" / "b" / "up")
    for bad in ("out", "out/key", "a/pw", "a/b/up", "a/b/up/etc", "/workspace/out/new.txt"):
        with pytest.raises(InvalidInput):
            resolve_in_workspace(ws, bad)


def test_symlink_inside_allowed(ws: Path) -> None:
    os.symlink("a/f.txt", ws / "link")
    assert resolve_in_workspace(ws, "link") == ws.resolve() / "a" / "f.txt"


def test_workspace_itself_a_symlink(tmp_path: Path, ws: Path) -> None:
    alias = tmp_path / "alias"
    os.symlink(ws, alias)
    assert resolve_in_workspace(alias, "a/f.txt") == ws.resolve() / "a" / "f.txt"


def test_sandbox_path() -> None:
    assert sandbox_path("a/b") == "/workspace/a/b"
    assert sandbox_path("/workspace") == "/workspace"
    with pytest.raises(InvalidInput):
        sandbox_path("../x")


def test_directory_usage(tmp_path: Path) -> None:
    root = tmp_path / "cargo"
    (root / "d").mkdir(parents=True)
    (root / "one").write_bytes(b"x" * 100_000)
    (root / "d" / "two").write_bytes(b"y" * 50_000)
    os.link(root / "one", root / "d" / "hard")
    os.symlink("/usr", root / "sym")
    usage = directory_usage(root)
    assert usage.apparent_bytes == 150_000 + len("/usr")  # the symlink itself
    assert usage.files == 4 and usage.dirs == 2
    assert usage.bytes >= 150_000 and usage.complete
    partial = directory_usage(root, stop_after_bytes=10)
    assert not partial.complete
