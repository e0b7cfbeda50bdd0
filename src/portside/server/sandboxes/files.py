"""Workspace file operations, done on the host side of the workspace directory.

The sandbox can swap any workspace directory for a symlink at any moment, so no checked path is ever
reused: every operation goes through :mod:`.drivers.safefs`, which opens each path component relative to
its parent's directory fd with ``O_NOFOLLOW`` and acts on the final fd. Symlinks anywhere in a path are
refused (``invalid_path``); deleting a symlink deletes the link; listings show links without following them.
Writes are size-checked against the cargo's limit before any byte lands.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

from portside.server.errors import DomainError, InvalidInput, NotFound, PayloadTooLarge
from portside.server.sandboxes.drivers import safefs
from portside.server.sandboxes.drivers.paths import directory_usage, workspace_relative
from portside.server.sandboxes.schemas import FileInfo

CHUNK = 1024 * 1024


class CargoFull(PayloadTooLarge):
    """Writing would take the cargo past its size limit (413)."""

    code = "cargo_size_exceeded"


def _file_rel(path: str, what: str = "path must name a file in the workspace") -> str:
    rel = workspace_relative(path)
    if not rel:
        raise InvalidInput(what, code="invalid_path", details={"path": path})
    return rel


def read_bytes(workspace: Path, path: str, max_bytes: int) -> bytes:
    """Read a whole file (for small reads). Blocking."""
    _file_rel(path)
    with open(safefs.open_file(workspace, path), "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise PayloadTooLarge(
                f"file is {size} bytes; read it with download",
                details={"path": path, "size": size, "limit": max_bytes},
            )
        return fh.read(max_bytes + 1)[:max_bytes]


async def stream_file(workspace: Path, path: str) -> tuple[int, AsyncIterator[bytes]]:
    """(size, chunk iterator) of a file, for streamed downloads."""
    _file_rel(path)
    fd = await asyncio.to_thread(safefs.open_file, workspace, path)
    size = os.fstat(fd).st_size

    async def _chunks() -> AsyncIterator[bytes]:
        # The sandbox may grow the file meanwhile: never send more than the announced Content-Length.
        left = size
        with os.fdopen(fd, "rb") as fh:
            while left > 0:
                chunk = await asyncio.to_thread(fh.read, min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    return size, _chunks()


def check_room(workspace: Path, replaced: int, incoming: int, limit_bytes: int, max_file_bytes: int) -> None:
    """Raise unless ``incoming`` bytes (replacing a file of ``replaced`` bytes) fit the per-file limit and the
    cargo's remaining space."""
    if incoming > max_file_bytes:
        raise PayloadTooLarge(
            f"file of {incoming} bytes exceeds the {max_file_bytes}-byte limit",
            details={"size": incoming, "limit": max_file_bytes},
        )
    used = directory_usage(workspace, stop_after_bytes=limit_bytes + 1).apparent_bytes
    if used - replaced + incoming > limit_bytes:
        raise CargoFull(
            f"cargo size limit of {limit_bytes // (1024 * 1024)} MB would be exceeded",
            details={"used_bytes": used, "incoming_bytes": incoming, "limit_bytes": limit_bytes},
        )


def write_bytes(workspace: Path, path: str, content: bytes, limit_bytes: int, max_file_bytes: int) -> None:
    """Write a file atomically (temp file + rename), creating parent directories. Blocking."""
    _file_rel(path, "cannot write to the workspace root")
    check_room(workspace, _existing_size(workspace, path), len(content), limit_bytes, max_file_bytes)
    with safefs.entry(workspace, path, create_parents=True) as (parent, name):
        _writable_target(safefs.lstat_at(parent, name), path)
        safefs.replace_at(parent, name, content)


def _writable_target(st: os.stat_result | None, path: str) -> int:
    """Size of the file a write replaces (0 if none); a directory or a link there is refused."""
    if st is None:
        return 0
    if stat.S_ISDIR(st.st_mode):
        raise InvalidInput(f"{path} is a directory", code="invalid_path", details={"path": path})
    if stat.S_ISLNK(st.st_mode):
        raise InvalidInput("path is a symbolic link", code="invalid_path", details={"path": path})
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _existing_size(workspace: Path, path: str) -> int:
    try:
        with safefs.entry(workspace, path) as (parent, name):
            return _writable_target(safefs.lstat_at(parent, name), path)
    except NotFound:
        return 0


def list_dir(workspace: Path, path: str) -> list[FileInfo]:
    """Entries of a directory, directories first, by name; links are listed, not followed. Blocking."""
    rel = workspace_relative(path)
    if rel:
        with safefs.entry(workspace, path) as (parent, name):
            st = safefs.lstat_at(parent, name)
            if st is None:
                raise safefs.not_found(path)
            if stat.S_ISLNK(st.st_mode):
                raise InvalidInput("path is a symbolic link", code="invalid_path", details={"path": path})
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidInput(f"{path} is not a directory", code="invalid_path", details={"path": path})
    out: list[FileInfo] = []
    for name, st in safefs.list_entries(workspace, path):
        is_dir = stat.S_ISDIR(st.st_mode)
        out.append(
            FileInfo(
                name=name,
                path=f"{rel}/{name}" if rel else name,
                is_dir=is_dir,
                size=None if is_dir else st.st_size,
                modified_at=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc),
            )
        )
    out.sort(key=lambda f: (not f.is_dir, f.name))
    return out


def delete(workspace: Path, path: str) -> None:
    """Delete a file, a symlink (never its target) or a directory tree. Blocking."""
    _file_rel(path, "cannot delete the workspace root")
    safefs.remove(workspace, path)


def usage_bytes(workspace: Path) -> int:
    return directory_usage(workspace).apparent_bytes if workspace.exists() else 0


def ensure_error_free(exc: BaseException) -> DomainError:
    """Map OS errors on user paths to clean 4xx errors."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return NotFound("file not found", code="file_not_found")
    if isinstance(exc, (IsADirectoryError, NotADirectoryError)):
        return InvalidInput(str(exc.strerror or exc), code="invalid_path")
    if isinstance(exc, PermissionError):
        return InvalidInput("permission denied", code="invalid_path")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CargoFull("the cargo volume is full", details={"errno": exc.errno})
    return InvalidInput(f"file operation failed: {exc}", code="invalid_path")
