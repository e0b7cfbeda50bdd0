"""Race-free host-side file access inside a sandbox workspace (or any directory the sandbox can write).

Code in the sandbox can replace any workspace directory with a symlink at any moment, so a path that was
checked with ``realpath()`` may lead somewhere else by the time it is used. Nothing here ever uses a path
twice: the workspace root is opened once as a directory fd, every component of a user path is opened
relative to its parent's fd with ``O_NOFOLLOW | O_DIRECTORY``, and the final operation (open, create,
rename, list, unlink, rmtree) is done relative to the last directory fd without following a link.

Rules: a symlink anywhere in a path is refused (``invalid_path``), even one that points back into the
workspace; only ``remove`` acts on a link itself (it deletes the link). Reads accept regular files only, so a
FIFO or a device planted by the sandbox is never opened for reading in a way that blocks or has side effects.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from portside.server.errors import InvalidInput, NotFound

from .paths import workspace_relative

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_TOUCH_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def invalid(message: str, path: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_path", details={"path": path})


def not_found(path: str) -> NotFound:
    return NotFound(f"file not found: {path}", code="file_not_found", details={"path": path})


def _through_link(path: str) -> InvalidInput:
    return invalid("path goes through a symbolic link", path)


def parts_of(path: str) -> list[str]:
    """The components of a user path relative to the workspace root (``[]`` for the root itself)."""
    rel = workspace_relative(path)
    return rel.split("/") if rel else []


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """``lstat`` of ``name`` in ``dir_fd``, or ``None`` if it does not exist."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def open_root(workspace: Path) -> int:
    """An ``O_PATH`` fd of the workspace directory itself (a server-chosen path, so it may be followed)."""
    try:
        return os.open(workspace, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound("workspace not found", code="file_not_found") from None


def _step(dir_fd: int, name: str, path: str, *, create: bool) -> int:
    """Open directory ``name`` in ``dir_fd`` without following a link, creating it when asked."""
    for _ in range(3):  # a concurrent rmdir between mkdir and open: try again
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            if not create:
                raise not_found(path) from None
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=dir_fd)
        except NotADirectoryError:
            st = lstat_at(dir_fd, name)
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise _through_link(path) from None
            if create:
                raise invalid(f"{name!r} in the path is not a directory", path) from None
            raise not_found(path) from None
    raise invalid("the path keeps changing", path)


def walk(root_fd: int, names: list[str], path: str, *, create: bool = False) -> int:
    """A new ``O_PATH`` fd of directory ``names`` under ``root_fd`` (``mkdir -p`` when ``create``)."""
    fd = os.dup(root_fd)
    try:
        for name in names:
            nxt = _step(fd, name, path, create=create)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def directory(workspace: Path, path: str, *, create: bool = False) -> Iterator[int]:
    """An ``O_PATH`` fd of the directory a user path names (the root for ``.``)."""
    names = parts_of(path)
    with _fd(open_root(workspace)) as root, _fd(walk(root, names, path, create=create)) as fd:
        yield fd


@contextlib.contextmanager
def entry(workspace: Path, path: str, *, create_parents: bool = False) -> Iterator[tuple[int, str]]:
    """``(parent directory fd, final name)`` of a user path that must not be the workspace root."""
    names = parts_of(path)
    if not names:
        raise invalid("path must name an entry in the workspace, not the workspace root", path)
    with _fd(open_root(workspace)) as root, _fd(walk(root, names[:-1], path, create=create_parents)) as parent:
        yield parent, names[-1]


def open_regular(dir_fd: int, name: str, path: str) -> int:
    """A read fd of regular file ``name`` in ``dir_fd``; links, directories, FIFOs and devices are refused."""
    st = lstat_at(dir_fd, name)
    if st is None or stat.S_ISDIR(st.st_mode):
        raise not_found(path)
    if stat.S_ISLNK(st.st_mode):
        raise _through_link(path)
    if not stat.S_ISREG(st.st_mode):
        raise invalid("not a regular file", path)
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise not_found(path) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _through_link(path) from None
        raise
    now = os.fstat(fd)
    if not stat.S_ISREG(now.st_mode) or not os.path.samestat(st, now):
        os.close(fd)
        raise invalid("the file changed while it was opened", path)
    return fd


def open_file(workspace: Path, path: str) -> int:
    """A read fd of the regular file a user path names (see :func:`open_regular`)."""
    with entry(workspace, path) as (parent, name):
        return open_regular(parent, name, path)


def read_file(workspace: Path, path: str, max_bytes: int) -> bytes:
    """The first ``max_bytes`` of a regular file."""
    with open(open_file(workspace, path), "rb") as fh:
        return fh.read(max_bytes)


def read_tail(workspace: Path, path: str, max_bytes: int) -> bytes:
    """The last ``max_bytes`` of a regular file."""
    with open(open_file(workspace, path), "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(0, size - max_bytes))
        return fh.read(max_bytes)


def replace_at(dir_fd: int, name: str, content: bytes, mode: int = 0o644) -> None:
    """Atomically make ``name`` in ``dir_fd`` a regular file holding ``content`` (temp file + rename)."""
    tmp = f".{name[:200]}.{secrets.token_hex(6)}.portside-tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        with open(fd, "wb") as fh:
            fh.write(content)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def write_file(workspace: Path, path: str, content: bytes) -> None:
    """Write a file atomically, creating parent directories (never through a link)."""
    with entry(workspace, path, create_parents=True) as (parent, name):
        replace_at(parent, name, content)


def touch(workspace: Path, path: str) -> None:
    """Create an empty file if missing, else bump its times; never follows a link."""
    with entry(workspace, path) as (parent, name):
        try:
            fd = os.open(name, _TOUCH_FLAGS, 0o644, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _through_link(path) from None
            raise
        with _fd(fd):
            os.utime(fd)


def exists(workspace: Path, path: str) -> bool:
    """Whether an entry (of any type, links included) exists at a user path, without following links."""
    try:
        with entry(workspace, path) as (parent, name):
            return lstat_at(parent, name) is not None
    except (NotFound, InvalidInput):
        return False


def is_dir(workspace: Path, path: str) -> bool:
    """Whether a user path names a real directory reached without any link."""
    try:
        with directory(workspace, path):
            return True
    except NotFound:
        return False


def list_entries(workspace: Path, path: str) -> list[tuple[str, os.stat_result]]:
    """``(name, lstat)`` of each entry of a directory; links are listed, never followed."""
    with directory(workspace, path) as dir_fd:
        try:
            fd = os.open(".", _LIST_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            raise not_found(path) from None
        out: list[tuple[str, os.stat_result]] = []
        with _fd(fd), os.scandir(fd) as it:
            for e in it:
                with contextlib.suppress(OSError):
                    out.append((e.name, e.stat(follow_symlinks=False)))
        return out


def remove(workspace: Path, path: str) -> None:
    """Delete a file, a link (not its target) or a directory tree (fd-based, never leaving the tree)."""
    with entry(workspace, path) as (parent, name):
        st = lstat_at(parent, name)
        if st is None:
            raise not_found(path)
        if stat.S_ISDIR(st.st_mode):
            rmtree_at(parent, name)
        else:
            os.unlink(name, dir_fd=parent)


def rmtree_at(dir_fd: int, name: str) -> None:
    """Remove directory ``name`` of ``dir_fd`` and everything under it, every level opened with ``O_NOFOLLOW``.

    Unlike ``shutil.rmtree`` (which opens a directory it has just ``lstat``-ed without ``O_NOFOLLOW``), nothing
    is ever opened through a link, so a link swapped in mid-way is removed itself and a planted FIFO or device
    is never opened.
    """
    try:
        fd = os.open(name, _LIST_FLAGS | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)  # it became a link or a file meanwhile: remove just that
        return
    with _fd(fd):
        with os.scandir(fd) as it:
            children = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for child, child_is_dir in children:
            if child_is_dir:
                rmtree_at(fd, child)
                continue
            try:
                os.unlink(child, dir_fd=fd)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                rmtree_at(fd, child)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=dir_fd)


def remove_tree(path: Path, *, ignore_errors: bool = False) -> None:
    """``shutil.rmtree(path)`` for a server-chosen directory whose contents a sandbox may still be changing."""
    try:
        parent = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        with _fd(parent):
            rmtree_at(parent, path.name)
    except OSError:
        if not ignore_errors:
            raise
