"""Workspace file operations, done on the host side of the workspace directory.

Every user path goes through :func:`resolve_in_workspace`, which refuses ``..``, absolute
paths outside ``/workspace`` and symlinks that lead out. Writes are size-checked against
the cargo's limit before any byte lands.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

from portside.server.errors import DomainError, InvalidInput, NotFound, PayloadTooLarge
from portside.server.sandboxes.drivers.paths import directory_usage, resolve_in_workspace, workspace_relative
from portside.server.sandboxes.schemas import FileInfo

CHUNK = 1024 * 1024


class CargoFull(PayloadTooLarge):
    """Writing would take the cargo past its size limit (413)."""

    code = "cargo_size_exceeded"


def _not_found(path: str) -> NotFound:
    return NotFound(f"file not found: {path}", code="file_not_found", details={"path": path})


def _display_path(workspace: Path, target: Path) -> str:
    rel = target.relative_to(Path(os.path.realpath(workspace)))
    return str(rel) if str(rel) != "." else "."


def _file_target(workspace: Path, path: str) -> Path:
    """The host path of a user path that must name a file (not the workspace root)."""
    if not workspace_relative(path):
        raise InvalidInput("path must name a file in the workspace", code="invalid_path", details={"path": path})
    return resolve_in_workspace(workspace, path)


def read_bytes(workspace: Path, path: str, max_bytes: int) -> bytes:
    """Read a whole file (for small reads). Blocking."""
    target = _file_target(workspace, path)
    if not target.is_file():
        raise _not_found(path)
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)  # the sandbox may swap in a link meanwhile
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise PayloadTooLarge(
                f"file is {size} bytes; read it with download",
                details={"path": path, "size": size, "limit": max_bytes},
            )
        return fh.read()


async def stream_file(workspace: Path, path: str) -> tuple[int, AsyncIterator[bytes]]:
    """(size, chunk iterator) of a file, for streamed downloads."""
    target = _file_target(workspace, path)
    if not target.is_file():
        raise _not_found(path)
    size = target.stat().st_size
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)

    async def _chunks() -> AsyncIterator[bytes]:
        with os.fdopen(fd, "rb") as fh:
            while True:
                chunk = await asyncio.to_thread(fh.read, CHUNK)
                if not chunk:
                    return
                yield chunk

    return size, _chunks()


def check_room(workspace: Path, target: Path, incoming: int, limit_bytes: int, max_file_bytes: int) -> None:
    """Raise unless ``incoming`` bytes fit the per-file limit and the cargo's remaining space."""
    if incoming > max_file_bytes:
        raise PayloadTooLarge(
            f"file of {incoming} bytes exceeds the {max_file_bytes}-byte limit",
            details={"size": incoming, "limit": max_file_bytes},
        )
    used = directory_usage(workspace, stop_after_bytes=limit_bytes + 1).apparent_bytes
    replaced = target.stat().st_size if target.is_file() else 0
    if used - replaced + incoming > limit_bytes:
        raise CargoFull(
            f"cargo size limit of {limit_bytes // (1024 * 1024)} MB would be exceeded",
            details={"used_bytes": used, "incoming_bytes": incoming, "limit_bytes": limit_bytes},
        )


def write_bytes(workspace: Path, path: str, content: bytes, limit_bytes: int, max_file_bytes: int) -> None:
    """Write a file atomically (temp file + rename), creating parent directories. Blocking."""
    if not workspace_relative(path):
        raise InvalidInput("cannot write to the workspace root", code="invalid_path", details={"path": path})
    target = resolve_in_workspace(workspace, path)
    if target.is_dir():
        raise InvalidInput(f"{path} is a directory", code="invalid_path", details={"path": path})
    check_room(workspace, target, len(content), limit_bytes, max_file_bytes)
    target.parent.mkdir(parents=True, exist_ok=True)
    resolve_in_workspace(workspace, path)  # parents may have been swapped for links meanwhile
    tmp = target.with_name(f".{target.name}.portside-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def list_dir(workspace: Path, path: str) -> list[FileInfo]:
    """Entries of a directory, directories first, by name. Blocking."""
    target = resolve_in_workspace(workspace, path)
    if not target.exists():
        raise _not_found(path)
    if not target.is_dir():
        raise InvalidInput(f"{path} is not a directory", code="invalid_path", details={"path": path})
    out: list[FileInfo] = []
    for entry in os.scandir(target):
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        is_dir = entry.is_dir(follow_symlinks=False)
        out.append(
            FileInfo(
                name=entry.name,
                path=_display_path(workspace, Path(entry.path)),
                is_dir=is_dir,
                size=None if is_dir else st.st_size,
                modified_at=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc),
            )
        )
    out.sort(key=lambda f: (not f.is_dir, f.name))
    return out


def delete(workspace: Path, path: str) -> None:
    """Delete a file or a directory tree. Blocking."""
    if not workspace_relative(path):
        raise InvalidInput("cannot delete the workspace root", code="invalid_path", details={"path": path})
    rel = workspace_relative(path)
    # Resolve the parent only, so that deleting a symlink removes the link itself.
    parent = resolve_in_workspace(workspace, os.path.dirname(rel) or ".")
    target = parent / os.path.basename(rel)
    if not target.exists() and not target.is_symlink():
        raise _not_found(path)
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink()


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
