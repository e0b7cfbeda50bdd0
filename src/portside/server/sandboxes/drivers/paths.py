"""Host-side path confinement for workspace files and directory usage for cargo size limits."""

from __future__ import annotations

import os
import posixpath
import stat
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


def resolve_in_workspace(workspace: Path, rel_or_abs: str) -> Path:
    """Map a user path onto the host workspace directory, refusing every way out.

    ``..`` escapes, absolute paths outside ``/workspace`` and symlinks (anywhere along the path) that
    resolve outside the workspace raise ``InvalidInput(code="invalid_path")``. The returned path is
    absolute and symlink-resolved; it need not exist. Callers that then open it should still prefer
    ``O_NOFOLLOW`` for the final component, since the sandbox can change its files at any time.
    """
    rel = workspace_relative(rel_or_abs)
    root = Path(os.path.realpath(workspace))
    candidate = Path(os.path.realpath(root / rel)) if rel else root
    if candidate != root and root not in candidate.parents:
        raise _invalid("path resolves outside the workspace", rel_or_abs)
    return candidate


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


def directory_usage(path: Path, stop_after_bytes: int | None = None) -> DirectoryUsage:
    """Measure ``path`` like ``du``; stop early (``complete=False``) once past ``stop_after_bytes``.

    Blocking: call it with ``asyncio.to_thread`` from async code.
    """
    seen: set[tuple[int, int]] = set()
    used = apparent = files = dirs = 0
    stack = [os.fspath(path)]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        dirs += 1
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
                used += st.st_blocks * 512
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
    return DirectoryUsage(used, apparent, files, dirs)
