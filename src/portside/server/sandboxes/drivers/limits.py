"""Resource limits: rlimits for the sandbox processes and an optional per-sandbox cgroup.

Why both (measured on this host, running as root):

* ``RLIMIT_NPROC`` does not contain a fork bomb here. The kernel skips the check for the host root user
  (``INIT_USER``) and a user namespace created by root maps the sandbox onto host uid 0, so a per-uid
  process limit is never enforced. Running the sandbox as a distinct unprivileged host uid would fix that but
  cannot bind ``/root/.pyenv`` (mode 0700) and changes workspace ownership. So the process cap comes from the
  **pids cgroup** (``pids.max``), which counts every task (processes and threads) of the sandbox.
* Memory: ``RLIMIT_AS`` per process gives a clean ``MemoryError`` for a single hog (the kernel usually
  survives), and the **memory cgroup** caps the sum over all processes (the kernel OOM-kills inside it).
* CPU: the **cpu cgroup** caps the whole sandbox at ``Resources.cpus`` cores (v2 ``cpu.max``, v1
  ``cpu.cfs_quota_us``/``cpu.cfs_period_us``), so a process detached from an exec cannot take more than that.
  Without a cpu cgroup the agent runs a watchdog that puts ``RLIMIT_CPU`` (``cpu_seconds``) on every process
  of the sandbox but the agent and the kernel, including detached ones, and kills any that goes past it.
* ``RLIMIT_CPU`` is also applied to each shell command at its start (not to the long-lived kernel, whose
  executions are bounded by their wall-clock timeouts); ``RLIMIT_NOFILE`` to everything.

cgroup v2 is used when the unified hierarchy has the controllers and is writable; else cgroup v1 (``pids``,
``memory`` and ``cpu`` hierarchies, nested under this process's own cgroup). With neither, the driver logs one
warning and relies on rlimits, the CPU watchdog and the pid namespace (a fork bomb is then only bounded by host
limits).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from .base import Resources

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000
"""The CFS period of the cpu cgroup: the sandbox may run ``cpus * period`` microseconds in every period."""
_V1_CONTROLLERS = ("pids", "memory", "cpu")
_AS_HEADROOM_MB = 384
"""RLIMIT_AS = memory_mb + this: an idle kernel maps ~200 MB (~330 MB with numpy) it mostly never touches.
So a single process allocating about memory_mb gets a MemoryError before the cgroup OOM killer acts."""


def rlimits_for(resources: Resources) -> dict[str, int]:
    """The rlimits the in-sandbox agent sets on itself (inherited by the kernel and commands)."""
    as_bytes = (resources.memory_mb + _AS_HEADROOM_MB) * 1024 * 1024
    limits = {
        "RLIMIT_AS": as_bytes,
        "RLIMIT_NOFILE": resources.max_open_files,
        "RLIMIT_NPROC": resources.max_processes,
        "RLIMIT_CORE": 0,
    }
    if not resources.limit_address_space:  # e.g. Chromium: memory is then capped by the cgroup only
        del limits["RLIMIT_AS"]
    return limits


def _own_cgroup_v1(controller: str) -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(","):
                return path
    return "/"


def _v1_dir(controller: str, prefix: str, name: str) -> Path:
    return CGROUP_ROOT / controller / _own_cgroup_v1(controller).lstrip("/") / prefix / name


def cpu_quota_us(cpus: float) -> int:
    """CFS quota per :data:`CPU_PERIOD_US` for a share of ``cpus`` cores (at least 1 ms)."""
    return max(1000, int(cpus * CPU_PERIOD_US))


def _v2_root() -> Path | None:
    for candidate in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        controllers = candidate / "cgroup.controllers"
        with contextlib.suppress(OSError):
            have = set(controllers.read_text().split())
            if {"pids", "memory"} <= have:
                return candidate
    return None


@dataclass
class Cgroup:
    """One sandbox's cgroup directories (one for v2, one per controller for v1)."""

    dirs: list[Path] = field(default_factory=list)
    memory_dir: Path | None = None
    version: int = 0
    cpu_dir: Path | None = None
    """Where the CPU rate limit is set; None when this host has no writable cpu controller."""

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def memory_usage(self) -> int | None:
        if self.memory_dir is None:
            return None
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        try:
            return int((self.memory_dir / name).read_text())
        except (OSError, ValueError):
            return None

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in (d / "cgroup.procs").read_text().split())
        return sorted(found)

    def kill_all(self) -> None:
        """SIGKILL every task in the cgroup (``cgroup.kill`` on v2)."""
        for d in self.dirs:
            kill = d / "cgroup.kill"
            if kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        """Kill what is left and remove the directories."""
        self.kill_all()
        for d in self.dirs:
            for _ in range(20):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


class CgroupManager:
    """Creates per-sandbox cgroups under ``<own cgroup>/portside`` if this host lets us."""

    def __init__(self, enabled: bool = True, prefix: str = "portside") -> None:
        self.prefix = prefix
        self.enabled = enabled
        self._warned = False
        self._v2 = _v2_root() if enabled else None

    def _warn(self, why: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("sandbox cgroups unavailable (%s): fork bombs are only bounded by host limits", why)

    def existing(self, name: str) -> Cgroup | None:
        """The cgroup called ``name`` if it exists (to sweep one left by a dead server)."""
        if not self.enabled:
            return None
        if self._v2 is not None:
            d = self._v2 / self.prefix / name
            return Cgroup([d], d, 2) if d.is_dir() else None
        cg = Cgroup(version=1)
        for controller in _V1_CONTROLLERS:
            d = _v1_dir(controller, self.prefix, name)
            if d.is_dir():
                cg.dirs.append(d)
                if controller == "memory":
                    cg.memory_dir = d
        return cg if cg.dirs else None

    def create(self, name: str, resources: Resources) -> Cgroup | None:
        """Create and configure a cgroup for one sandbox, or return None (after one warning)."""
        if not self.enabled:
            return None
        try:
            if self._v2 is not None:
                return self._create_v2(name, resources)
            return self._create_v1(name, resources)
        except OSError as exc:
            self._warn(str(exc))
            return None

    def _create_v2(self, name: str, resources: Resources) -> Cgroup:
        assert self._v2 is not None
        parent = self._v2 / self.prefix
        parent.mkdir(exist_ok=True)
        for level in (self._v2, parent):
            for controller in ("+pids +memory", "+cpu"):
                with contextlib.suppress(OSError):
                    (level / "cgroup.subtree_control").write_text(controller)
        d = parent / name
        d.mkdir()
        cg = Cgroup([d], d, 2)
        try:
            (d / "pids.max").write_text(str(resources.max_processes))
            with contextlib.suppress(OSError):
                (d / "cpu.max").write_text(f"{cpu_quota_us(resources.cpus)} {CPU_PERIOD_US}")
                cg.cpu_dir = d
            (d / "memory.max").write_text(str(resources.memory_mb * 1024 * 1024))
            with contextlib.suppress(OSError):
                (d / "memory.swap.max").write_text("0")
        except OSError:
            cg.remove()
            raise
        return cg

    def _create_v1(self, name: str, resources: Resources) -> Cgroup:
        pids_base = CGROUP_ROOT / "pids"
        mem_base = CGROUP_ROOT / "memory"
        if not (pids_base / "cgroup.procs").exists():
            raise OSError("no pids cgroup controller")
        cg = Cgroup(version=1)
        try:
            pd = _v1_dir("pids", self.prefix, name)
            pd.mkdir(parents=True)
            cg.dirs.append(pd)
            (pd / "pids.max").write_text(str(resources.max_processes))
            if (mem_base / "cgroup.procs").exists():
                md = _v1_dir("memory", self.prefix, name)
                md.mkdir(parents=True)
                cg.dirs.append(md)
                cg.memory_dir = md
                limit = str(resources.memory_mb * 1024 * 1024)
                (md / "memory.limit_in_bytes").write_text(limit)
                with contextlib.suppress(OSError):
                    (md / "memory.memsw.limit_in_bytes").write_text(limit)
            if (CGROUP_ROOT / "cpu" / "cgroup.procs").exists():
                cd = _v1_dir("cpu", self.prefix, name)
                cd.mkdir(parents=True)
                cg.dirs.append(cd)
                (cd / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                (cd / "cpu.cfs_quota_us").write_text(str(cpu_quota_us(resources.cpus)))
                cg.cpu_dir = cd
        except OSError:
            cg.remove()
            raise
        return cg
