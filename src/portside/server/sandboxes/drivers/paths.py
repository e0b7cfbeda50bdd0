"""Lexical workspace path validation and race-free directory usage for cargo size limits.

Host-side file operations on workspace paths go through :mod:`.safefs`, never through a checked path string.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from portside.server.errors import InvalidInput

from .base import WORKSPACE_MOUNT


def _invalid(message: str, path: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_path", details={"path": path})


def workspace_relative(rel_or_abs: str) -> str:
    """Normalize a user path to a path relative to the workspace root ("" for the root itself).

    Accepts ``app.py``, ``./a/b``, ``/workspace/a``; refuses ``..`` escapes and absolute paths
    outside ``/workspace`` with ``InvalidInput(code="invalid_path")``.
    """
    if not isinstance(rel_or_abs, str) or "\x00" in rel_or_abs:
        raise _invalid("path must be a string without NUL bytes", repr(rel_or_abs))
    raw = rel_or_abs.strip()
    path = raw
    if path.startswith("/"):
        norm = posixpath.normpath(path)
        if norm.startswith("//"):
            norm = "/" + norm.lstrip("/")
        if norm != WORKSPACE_MOUNT and not norm.startswith(WORKSPACE_MOUNT + "/"):
            raise _invalid(f"absolute paths must be under {WORKSPACE_MOUNT}", raw)
        path = norm[len(WORKSPACE_MOUNT) :].lstrip("/")
    norm = posixpath.normpath(path) if path else "."
    if norm == ".." or norm.startswith("../") or norm.startswith("/"):
        raise _invalid("path escapes the workspace", raw)
    return "" if norm == "." else norm


def sandbox_path(rel_or_abs: str, mount: str = WORKSPACE_MOUNT) -> str:
    """The path a user path has inside the sandbox (``/workspace/...``), validated lexically."""
    rel = workspace_relative(rel_or_abs)
    return f"{mount}/{rel}" if rel else mount


@dataclass(frozen=True)
class DirectoryUsage:
    """Disk usage of a directory tree (hard links counted once, symlinks not followed)."""

    bytes: int
    apparent_bytes: int
    files: int
    dirs: int
    complete: bool = True


_SUBDIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _names(fd: int) -> list[str]:
    with os.scandir(fd) as it:
        return [e.name for e in it]


def directory_usage(path: Path, stop_after_bytes: int | None = None) -> DirectoryUsage:
    """Measure ``path`` like ``du``; stop early (``complete=False``) once past ``stop_after_bytes``.

    Race-free against the sandbox: every subdirectory is opened relative to its parent's fd with
    ``O_NOFOLLOW | O_DIRECTORY``, so a directory swapped for a symlink mid-walk is never followed (at most
    as many fds as the tree is deep are open at once). Blocking: call it with ``asyncio.to_thread``.
    """
    seen: set[tuple[int, int]] = set()
    used = apparent = files = dirs = 0
    try:
        root = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        names = _names(root)
    except OSError:
        return DirectoryUsage(0, 0, 0, 0)
    stack: list[tuple[int, Iterator[str]]] = [(root, iter(names))]
    dirs = 1
    try:
        while stack:
            fd, it = stack[-1]
            name = next(it, None)
            if name is None:
                os.close(fd)
                stack.pop()
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                used += st.st_blocks * 512
                try:
                    child = os.open(name, _SUBDIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                try:
                    children = _names(child)
                except OSError:
                    os.close(child)
                    continue
                dirs += 1
                stack.append((child, iter(children)))
                continue
            files += 1
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            used += st.st_blocks * 512
            apparent += st.st_size
            if stop_after_bytes is not None and used > stop_after_bytes:
                return DirectoryUsage(used, apparent, files, dirs, complete=False)
    finally:
        for fd, _ in stack:
            os.close(fd)
    return DirectoryUsage(used, apparent, files, dirs)
