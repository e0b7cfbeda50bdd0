"""Workspace path confinement (the fd-based safefs walker) and directory usage (no sandbox needed)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from portside.server.errors import InvalidInput, NotFound
from portside.server.sandboxes import files
from portside.server.sandboxes.drivers import directory_usage, safefs, sandbox_path


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "f.txt").write_text("x")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host directory next to the workspace that no workspace operation may touch."""
    root = tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "f.txt").write_text("secret")
    (root / "f.txt").write_text("secret")
    return root


def _tree(root: Path) -> dict[str, bytes | None]:
    return {p.relative_to(root).as_posix(): None if p.is_dir() else p.read_bytes() for p in root.rglob("*")}


@pytest.mark.parametrize(
    ("user", "rel"),
    [
        ("./a/f.txt", "a/f.txt"),
        ("/workspace/a/f.txt", "a/f.txt"),
        ("a/../a/f.txt", "a/f.txt"),
        ("a//b/../f.txt", "a/f.txt"),
    ],
)
def test_accepted(ws: Path, user: str, rel: str) -> None:
    assert safefs.read_file(ws, user, 100) == (ws / rel).read_bytes()
    safefs.write_file(ws, "new/dir/" + rel, b"n")
    assert (ws / "new" / "dir" / rel).read_bytes() == b"n"
    assert {name for name, _ in safefs.list_entries(ws, "/workspace")} == {"a", "new"}


@pytest.mark.parametrize(
    "user",
    ["..", "../x", "a/../../x", "/etc/passwd", "/", "/workspace/../etc", "/workspacex/a", "a\x00b", "//etc"],
)
def test_refused(ws: Path, user: str) -> None:
    for op in (
        lambda: safefs.read_file(ws, user, 10),
        lambda: safefs.write_file(ws, user, b"x"),
        lambda: safefs.remove(ws, user),
    ):
        with pytest.raises(InvalidInput) as info:
            op()
        assert info.value.code == "invalid_path"


LINK_TARGETS = ["{outside}", "{outside}/a", "../../outside", "../../../outside/a", "/", "b", "."]


@pytest.mark.parametrize("target", LINK_TARGETS)
@pytest.mark.parametrize("level", ["l", "a/l", "a/b/l"])
def test_symlink_at_every_level_is_never_followed(ws: Path, outside: Path, level: str, target: str) -> None:
    """A link anywhere in a path is refused, wherever it points (inside links included); the host is untouched."""
    before = _tree(outside)
    os.symlink(target.format(outside=outside), ws / level)
    for path in (f"{level}/f.txt", f"{level}/a/f.txt", f"{level}/b/new.txt"):
        for op in (
            lambda p: safefs.read_file(ws, p, 100),
            lambda p: safefs.write_file(ws, p, b"pwned"),
            lambda p: safefs.list_entries(ws, os.path.dirname(p)),
            safefs.remove,
            safefs.touch,
        ):
            with pytest.raises(InvalidInput) as info:
                op(ws, path) if op in (safefs.remove, safefs.touch) else op(path)
            assert info.value.code == "invalid_path"
    with pytest.raises(InvalidInput):
        safefs.read_file(ws, level, 100)  # the link as the final component is refused too
    with pytest.raises(InvalidInput):
        safefs.is_dir(ws, level)
    assert _tree(outside) == before
    # Deleting the link removes the link only.
    safefs.remove(ws, level)
    assert not os.path.lexists(ws / level) and _tree(outside) == before


def test_dangling_links(ws: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path / "nowhere", ws / "dangle")
    os.symlink("nowhere", ws / "a" / "dangle")
    for path in ("dangle", "dangle/x", "a/dangle", "a/dangle/x"):
        with pytest.raises(InvalidInput):
            safefs.read_file(ws, path, 10)
        with pytest.raises(InvalidInput):
            safefs.touch(ws, path)
        with pytest.raises(InvalidInput):
            files.write_bytes(ws, path, b"x", 1 << 20, 1 << 20)  # the files API refuses a link outright
    for path in ("dangle/x", "a/dangle/x"):
        with pytest.raises(InvalidInput):
            safefs.write_file(ws, path, b"x")
    assert not (tmp_path / "nowhere").exists() and not (ws / "a" / "nowhere").exists()
    safefs.remove(ws, "a/dangle")
    assert not os.path.lexists(ws / "a" / "dangle")
    # The low-level atomic write replaces a link itself (rename never follows), never its target.
    safefs.write_file(ws, "dangle", b"x")
    assert not (ws / "dangle").is_symlink() and not (tmp_path / "nowhere").exists()


def test_fifos_and_devices_are_not_read(ws: Path) -> None:
    os.mkfifo(ws / "fifo")
    os.mknod(ws / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    for name in ("fifo", "null"):
        with pytest.raises(InvalidInput) as info:
            safefs.read_file(ws, name, 10)  # refused before opening: no hang on the FIFO
        assert info.value.code == "invalid_path"
    names = {name: stat.S_IFMT(st.st_mode) for name, st in safefs.list_entries(ws, ".")}
    assert names["fifo"] == stat.S_IFIFO and names["null"] == stat.S_IFCHR
    safefs.remove(ws, "fifo")
    assert not (ws / "fifo").exists()


def test_missing_and_non_directory_components(ws: Path) -> None:
    for path in ("nope", "nope/x", "a/f.txt/x", "a/b"):
        with pytest.raises(NotFound):
            safefs.read_file(ws, path, 10)
    with pytest.raises(InvalidInput):
        safefs.write_file(ws, "a/f.txt/x", b"x")  # a file where a directory should be
    assert safefs.is_dir(ws, "a/b") and not safefs.is_dir(ws, "a/nope") and safefs.is_dir(ws, "")


def test_remove_tree_does_not_follow_links_inside(ws: Path, outside: Path) -> None:
    before = _tree(outside)
    (ws / "t" / "deep").mkdir(parents=True)
    os.symlink(outside, ws / "t" / "out")
    os.symlink(outside / "a", ws / "t" / "deep" / "out")
    (ws / "t" / "deep" / "f").write_text("f")
    safefs.remove(ws, "t")
    assert not (ws / "t").exists() and _tree(outside) == before


def test_write_is_atomic_and_leaves_no_temp(ws: Path) -> None:
    safefs.write_file(ws, "a/f.txt", b"new")
    assert (ws / "a" / "f.txt").read_bytes() == b"new"
    assert sorted(p.name for p in (ws / "a").iterdir()) == ["b", "f.txt"]


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


def test_directory_usage_never_follows_links(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "cargo"
    (root / "d").mkdir(parents=True)
    os.symlink(outside, root / "d" / "out")
    (outside / "big").write_bytes(b"z" * 500_000)
    usage = directory_usage(root)
    assert usage.apparent_bytes == len(str(outside)) and usage.dirs == 2


def test_remove_tree_of_a_server_path(tmp_path: Path, outside: Path) -> None:
    before = _tree(outside)
    root = tmp_path / "cargo"
    (root / "d").mkdir(parents=True)
    os.symlink(outside, root / "d" / "out")
    safefs.remove_tree(root)
    assert not root.exists() and _tree(outside) == before
    safefs.remove_tree(root, ignore_errors=True)
    with pytest.raises(FileNotFoundError):
        safefs.remove_tree(root / "nope")


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


async def test_download_never_exceeds_the_announced_size(ws: Path) -> None:
    """The sandbox may grow a file while it streams; the body must match the Content-Length sent first."""
    size, chunks = await files.stream_file(ws, "a/f.txt")
    await asyncio.to_thread(_append, ws / "a" / "f.txt", b"grown" * 1000)
    body = b"".join([c async for c in chunks])
    assert size == 1 and body == b"x"
