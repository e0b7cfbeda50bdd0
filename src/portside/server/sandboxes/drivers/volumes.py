"""Size-limited workspace volumes: one small filesystem per cargo, so writes past the limit fail with ENOSPC.

A volume is named by the directory it is mounted on (its *mountpoint*, e.g. ``<data>/cargos/<id>``); drivers
bind that directory into the sandbox as ``/workspace`` and never need to know what backs it. Two backends share
one interface:

* :class:`LoopVolumes` (root with loop devices): a sparse ext4 image ``.<name>.img`` next to the mountpoint,
  loop-mounted on it (``nosuid,nodev``). The image is a sparse copy of a per-size template (made once with
  ``mkfs.ext4 -m 0``, sized so the usable space is at least the limit, ``lost+found`` removed), so creating a
  volume costs a few milliseconds: copy ~1 MB, one ioctl for the loop device (auto-clearing), one mount(2).
  Deleted files are discarded back to the host (``discard``), so the image never holds more than the limit.
* :class:`PlainVolumes` (fallback): plain directories, no filesystem-level limit (only the API's 413 check).

Every method is blocking (call it with ``asyncio.to_thread`` from async code) and safe from several threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import shutil
import struct
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from . import safefs

log = logging.getLogger(__name__)

_MS_NOSUID, _MS_NODEV, _MS_BIND = 0x2, 0x4, 0x1000
_MNT_DETACH = 0x2
_LOOP_SET_FD, _LOOP_CLR_FD, _LOOP_SET_STATUS64 = 0x4C00, 0x4C01, 0x4C04
_LOOP_CONFIGURE, _LOOP_CTL_GET_FREE = 0x4C0A, 0x4C82
_LO_FLAGS_AUTOCLEAR = 4
_MOUNT_OPTIONS = b"noinit_itable,discard"


@dataclass(frozen=True)
class VolumeUsage:
    """Space of a mounted volume as the filesystem reports it."""

    size_bytes: int
    used_bytes: int
    free_bytes: int


class Volumes:
    """Plain directories: the interface every backend implements, without any size enforcement."""

    enforced = False

    def __init__(self, reason: str = "disabled") -> None:
        self.reason = reason

    def describe(self) -> dict[str, object]:
        """A short report for readiness checks."""
        out: dict[str, object] = {"enforced": self.enforced, "backend": self.backend}
        if not self.enforced:
            out["reason"] = self.reason
        return out

    backend = "directory"

    def create(self, path: Path, size_mb: int) -> None:
        """A new, empty volume of ``size_mb`` mounted at ``path`` (which must not exist or be empty)."""
        path.mkdir(parents=True, exist_ok=True)

    def mount(self, path: Path) -> None:
        """Make an existing volume available at ``path`` again (after a restart); idempotent."""
        path.mkdir(parents=True, exist_ok=True)

    def is_mounted(self, path: Path) -> bool:
        """True when ``path`` is ready to use without calling :meth:`mount` (cheap, no syscall)."""
        return False

    def adopt_mounts(self, root: Path) -> int:
        """Take over volumes under ``root`` still mounted by a server that died (so :meth:`close` releases them)."""
        return 0

    def unmount(self, path: Path) -> None:
        """Release the volume's mount (its data stays); idempotent."""

    def destroy(self, path: Path) -> None:
        """Remove the volume and its data for good, even while something still uses it; idempotent."""
        safefs.remove_tree(path, ignore_errors=True)  # the sandbox may have left links in it

    def move(self, src: Path, dst: Path) -> bool:
        """Give the volume at ``src`` the name ``dst`` (``dst`` absent or an empty directory); False if not."""
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            if dst.is_dir() and not dst.is_symlink():
                dst.rmdir()  # only succeeds when empty
            os.rename(src, dst)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EXDEV, errno.ENOTDIR, errno.EBUSY):
                log.warning("volumes: cannot move %s to %s: %s", src, dst, exc)
            return False
        return True

    def usage(self, path: Path) -> VolumeUsage | None:
        """Filesystem-level usage of the volume, or None without one."""
        return None

    def close(self) -> None:
        """Unmount what this process mounted (volumes stay and are mounted again on demand)."""


PlainVolumes = Volumes


def image_of(path: Path) -> Path:
    """Where the image of the volume mounted at ``path`` lives: a hidden sibling file."""
    return path.with_name(f".{path.name}.img")


class _Libc:
    def __init__(self) -> None:
        self.lib = ctypes.CDLL(None, use_errno=True)
        self.lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        self.lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

    def mount(self, source: str, target: Path, fstype: str | None, flags: int, data: bytes | None) -> None:
        fs = fstype.encode() if fstype else None
        if self.lib.mount(source.encode(), os.fsencode(target), fs, flags, data) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")

    def umount(self, target: Path, flags: int = 0) -> int:
        """0, or the errno."""
        if self.lib.umount2(os.fsencode(target), flags) != 0:
            return ctypes.get_errno()
        return 0


def _attach_loop(image: Path) -> tuple[str, int]:
    """(device path, open fd) of a free loop device now backed by ``image``, auto-clearing on last close."""
    ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(64):
            n = fcntl.ioctl(ctl, _LOOP_CTL_GET_FREE)
            dev = f"/dev/loop{n}"
            lfd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
            ffd = os.open(image, os.O_RDWR | os.O_CLOEXEC)
            info = bytearray(232)  # struct loop_info64; lo_flags at offset 52
            struct.pack_into("=I", info, 52, _LO_FLAGS_AUTOCLEAR)
            try:
                try:
                    fcntl.ioctl(lfd, _LOOP_CONFIGURE, struct.pack("=II", ffd, 0) + bytes(info) + bytes(64))
                except OSError as exc:
                    if exc.errno not in (errno.EINVAL, errno.ENOTTY):
                        raise
                    fcntl.ioctl(lfd, _LOOP_SET_FD, ffd)  # kernels before 5.8
                    try:
                        fcntl.ioctl(lfd, _LOOP_SET_STATUS64, bytes(info))
                    except OSError:
                        fcntl.ioctl(lfd, _LOOP_CLR_FD, 0)
                        raise
            except OSError as exc:
                os.close(lfd)
                if exc.errno == errno.EBUSY:  # another process took it first
                    continue
                raise
            finally:
                os.close(ffd)
            return dev, lfd
        raise OSError(errno.EBUSY, "no free loop device")
    finally:
        os.close(ctl)


def _sparse_copy(src: Path, dst: Path) -> None:
    """Copy ``src`` to a new file ``dst``, keeping its holes (an empty ext4 image is ~1 MB of data)."""
    with open(src, "rb") as fi, open(dst, "xb") as fo:
        size = os.fstat(fi.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                data = os.lseek(fi.fileno(), offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break
                raise
            hole = os.lseek(fi.fileno(), data, os.SEEK_HOLE)
            pos = data
            while pos < hole:
                copied = os.copy_file_range(fi.fileno(), fo.fileno(), hole - pos, pos, pos)
                if copied <= 0:
                    break
                pos += copied
            offset = hole
        os.ftruncate(fo.fileno(), size)


class LoopVolumes(Volumes):
    """ext4 images on loop devices (root only)."""

    enforced = True
    backend = "loop-ext4"

    def __init__(self, template_dir: Path, mkfs: str = "mkfs.ext4") -> None:
        super().__init__("")
        self.template_dir = template_dir
        self.mkfs = mkfs
        self._libc = _Libc()
        self._lock = threading.RLock()
        self._mounted: set[Path] = set()

    # -- templates -----------------------------------------------------------------------------------
    def _mkfs(self, image: Path, size_bytes: int, limit_mb: int) -> None:
        image.unlink(missing_ok=True)
        with open(image, "xb") as fh:
            fh.truncate(size_bytes)
        journal = 4 if limit_mb <= 256 else 16
        args = [self.mkfs, "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"]
        if limit_mb >= 32:  # smaller: mkfs picks a journal that fits (or none)
            args += ["-J", f"size={journal}"]
        subprocess.run([*args, str(image)], check=True, capture_output=True, timeout=60)

    def _template(self, size_mb: int) -> Path:
        """An empty, unmounted image whose usable space is at least ``size_mb`` MiB (made once per size)."""
        template = self.template_dir / f"ext4-{size_mb}m.img"
        if template.exists():
            return template
        self.template_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        want = size_mb * 1024 * 1024
        size = want
        with tempfile.TemporaryDirectory(dir=self.template_dir) as tmp:
            work, mnt = Path(tmp) / "t.img", Path(tmp) / "m"
            mnt.mkdir()
            for _ in range(4):
                self._mkfs(work, size, size_mb)
                self._mount_image(work, mnt)
                try:
                    with contextlib.suppress(OSError):
                        (mnt / "lost+found").rmdir()  # e2fsck recreates it if ever needed
                    st = os.statvfs(mnt)
                    avail = st.f_bavail * st.f_frsize
                finally:
                    self._libc.umount(mnt)
                if avail >= want:
                    break
                size += want - avail + (1 << 20)  # a bigger image has a bit more metadata: go past a little
            else:  # pragma: no cover - mkfs overhead did not converge
                raise OSError(errno.ENOSPC, f"cannot size an ext4 image for {size_mb} MB")
            os.replace(work, template)
        return template

    # -- mounts --------------------------------------------------------------------------------------
    def _mount_image(self, image: Path, path: Path) -> None:
        dev, lfd = _attach_loop(image)
        try:
            self._libc.mount(dev, path, "ext4", _MS_NOSUID | _MS_NODEV, _MOUNT_OPTIONS)
        finally:
            os.close(lfd)  # the mount holds the device now; without one it clears itself

    def _detach(self, path: Path) -> None:
        """Unmount ``path`` (lazily when busy: the loop device goes once the last user is gone)."""
        while os.path.ismount(path):
            err = self._libc.umount(path)
            if err == errno.EBUSY:
                err = self._libc.umount(path, _MNT_DETACH)
            if err in (errno.EINVAL, errno.ENOENT):  # not a mount point (any more)
                break
            if err:
                raise OSError(err, f"umount {path}: {os.strerror(err)}")
        self._mounted.discard(path)

    def create(self, path: Path, size_mb: int) -> None:
        with self._lock:
            image = image_of(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(exist_ok=True)
            if os.path.ismount(path) or any(path.iterdir()):
                raise FileExistsError(errno.EEXIST, f"volume {path} is not empty")
            image.unlink(missing_ok=True)
            _sparse_copy(self._template(size_mb), image)
            try:
                self._mount_image(image, path)
            except BaseException:
                image.unlink(missing_ok=True)
                raise
            self._mounted.add(path)

    def mount(self, path: Path) -> None:
        with self._lock:
            if path in self._mounted:
                return
            image = image_of(path)
            path.mkdir(parents=True, exist_ok=True)
            if image.exists() and not os.path.ismount(path):
                self._mount_image(image, path)
            self._mounted.add(path)  # a directory without an image (made before limits) stays one

    def is_mounted(self, path: Path) -> bool:
        return path in self._mounted

    def adopt_mounts(self, root: Path) -> int:
        prefix = os.fsencode(root) + b"/"
        found = 0
        with open("/proc/self/mountinfo", "rb") as fh:
            for line in fh:
                point = line.split()[4]
                if not point.startswith(prefix):
                    continue
                path = Path(os.fsdecode(point.decode("unicode_escape").encode("latin-1")))
                if path.parent == root and image_of(path).exists():
                    with self._lock:
                        self._mounted.add(path)
                    found += 1
        return found

    def unmount(self, path: Path) -> None:
        with self._lock:
            if image_of(path).exists():
                self._detach(path)
            self._mounted.discard(path)

    def destroy(self, path: Path) -> None:
        with self._lock:
            with contextlib.suppress(OSError):
                self._detach(path)
            image_of(path).unlink(missing_ok=True)  # its space returns when the loop device lets go
            self._mounted.discard(path)
            if not os.path.ismount(path):
                safefs.remove_tree(path, ignore_errors=True)

    def move(self, src: Path, dst: Path) -> bool:
        with self._lock:
            if not image_of(src).exists():
                return super().move(src, dst)
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                dst.mkdir()
            except FileExistsError:
                if os.path.ismount(dst) or not dst.is_dir() or any(dst.iterdir()):
                    return False
            except OSError as exc:
                log.warning("volumes: cannot move %s to %s: %s", src, dst, exc)
                return False
            try:
                os.rename(image_of(src), image_of(dst))
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    log.warning("volumes: cannot move %s to %s: %s", src, dst, exc)
                with contextlib.suppress(OSError):
                    dst.rmdir()
                return False
            # A mount point cannot be renamed (EBUSY): mount the same filesystem at dst, then drop src.
            # Sandboxes already started on src keep their own bind of the filesystem root.
            try:
                self._libc.mount(str(src), dst, None, _MS_BIND, None)
            except OSError as exc:
                log.warning("volumes: cannot move %s to %s: %s", src, dst, exc)
                os.rename(image_of(dst), image_of(src))
                with contextlib.suppress(OSError):
                    dst.rmdir()
                return False
            self._mounted.add(dst)
            self._mounted.discard(src)
            try:
                self._detach(src)
                src.rmdir()
            except OSError as exc:  # dst is in use already; a leftover slot mount is swept at the next start
                log.warning("volumes: cannot release %s: %s", src, exc)
            return True

    def usage(self, path: Path) -> VolumeUsage | None:
        if not os.path.ismount(path):
            return None
        st = os.statvfs(path)
        size, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
        return VolumeUsage(size_bytes=size, used_bytes=size - st.f_bfree * st.f_frsize, free_bytes=free)

    def close(self) -> None:
        with self._lock:
            for path in list(self._mounted):
                if image_of(path).exists():
                    with contextlib.suppress(OSError):
                        self._detach(path)
            self._mounted.clear()


_PROBE: dict[str, str] = {}


def _probe(template_dir: Path) -> str:
    """ "" when loop-mounted ext4 images work here, else why not (checked once per process)."""
    if "reason" in _PROBE:
        return _PROBE["reason"]
    reason = ""
    if os.geteuid() != 0:
        reason = "the server does not run as root (loop mounts need it)"
    elif shutil.which("mkfs.ext4") is None:
        reason = "mkfs.ext4 is not installed (apt-get install e2fsprogs)"
    elif not os.path.exists("/dev/loop-control"):
        reason = "no loop device support (/dev/loop-control is missing)"
    else:
        try:
            LoopVolumes(template_dir)._template(8)
        except (OSError, subprocess.SubprocessError) as exc:
            reason = f"cannot loop-mount an ext4 image: {exc}"
    _PROBE["reason"] = reason
    return reason


def open_volumes(template_dir: Path, enabled: bool = True) -> Volumes:
    """Loop-mounted ext4 volumes when this host allows them, else plain directories (with the reason)."""
    if not enabled:
        return PlainVolumes("disabled by configuration (PORTSIDE_SANDBOX_DISK_LIMITS=false)")
    reason = _probe(template_dir)
    if reason:
        return PlainVolumes(reason)
    return LoopVolumes(template_dir)
