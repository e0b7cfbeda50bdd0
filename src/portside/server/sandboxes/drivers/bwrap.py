"""The default driver: one long-lived bubblewrap sandbox per Portside sandbox.

Layout of a sandbox (``bwrap --unshare-all``: new user, pid, ipc, uts, cgroup and network namespaces; the
network namespace is skipped only when ``resources.network`` is true)::

    /usr                      read-only bind of the host /usr; /bin /sbin /lib /lib64 recreated as symlinks
    <python prefixes>         read-only binds of sys.base_prefix and sys.prefix at the same paths
    /etc                      a few read-only host files (ld.so.cache, alternatives, localtime, ...) plus a
                              generated passwd/group/hosts; resolv.conf and CA certificates only with network
    /proc /dev                fresh procfs (pid namespace) and a minimal /dev
    /tmp /dev/shm             private tmpfs
    /workspace                the host workspace, read-write; HOME and the working directory
    /run/portside             private tmpfs of RUNTIME_TMPFS_BYTES: ipc sockets and kernel log; the kernel
                              connection file and agent config are read-only binds of host files
    /opt/portside/agent.py    the exec agent, read-only
    /                         remounted read-only

The sandbox runs as uid/gid 1000 inside its user namespace with every capability dropped, in a new session,
with ``--die-with-parent``, ``--disable-userns`` and the seccomp filter of :mod:`.seccomp`. Its pid 1 (bwrap's
init) starts with an empty environment. Inside it one agent process (see ``_agent.py``) starts the ipykernel
and runs shell commands on request, so an exec costs an RPC over a pipe, not a new sandbox. Python talks to
the kernel from the host over the ipc sockets, reached through ``/proc/<pid 1>/root`` (see
``AgentSandbox._open_inside_runtime``).

The host runtime dir (``<runtime_root>/<name>``: ``owner``, ``kernel.json``, ``agent.json``, ``etc/``) is
never mounted writable: nothing inside can change the files that decide host-side cleanup, and nothing the
sandbox writes lands on the host disk.

Limits: see :mod:`.limits` (pids + memory + cpu cgroup when writable, rlimits always). Killing the outer bwrap
process tears down the pid namespace, and the cgroup (if any) is swept as well.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from portside.server.errors import Unavailable

from ._runtime import (
    AGENT_SOURCE,
    AgentSandbox,
    check_env,
    connection_info,
    new_runtime_dir,
    real_path,
    sweep_stale_runtime_dirs,
)
from .base import WORKSPACE_MOUNT, SandboxDriver, SandboxHandle, SandboxSpec
from .limits import CgroupManager, rlimits_for
from .seccomp import filter_fd

RUNTIME_MOUNT = "/run/portside"
RUNTIME_TMPFS_BYTES = 4 * 1024 * 1024
"""Size of the sandbox's /run/portside tmpfs (ipc sockets and the kernel log need a few KiB)."""
AGENT_MOUNT = "/opt/portside/agent.py"
SANDBOX_UID = 1000
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "localtime", "nsswitch.conf", "mime.types", "inputrc")
_ETC_DIRS = ("alternatives", "ld.so.conf.d", "fonts")
_NET_ETC = ("resolv.conf", "gai.conf", "host.conf", "services", "protocols")
_NET_ETC_DIRS = ("ssl", "ca-certificates", "pki")


def default_runtime_root() -> Path:
    """``/run/portside`` when writable (root), else a per-user directory under the temp dir."""
    run = Path("/run")
    if os.access(run, os.W_OK):
        return run / "portside"
    return Path(tempfile.gettempdir()) / f"portside-{os.getuid()}"


@dataclass
class BwrapConfig:
    """Driver-wide settings."""

    bwrap: str = "bwrap"
    python: str = sys.executable
    python_prefixes: tuple[str, ...] = ()
    runtime_root: Path = field(default_factory=default_runtime_root)
    use_cgroups: bool = True
    start_timeout: float = 30.0
    extra_ro_binds: tuple[str, ...] = ()


def _supports(bwrap: str, option: str) -> bool:
    import subprocess

    try:
        out = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in (out.stdout + out.stderr)


def _python_prefixes(python: str) -> tuple[str, ...]:
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        prefixes = {sys.prefix, sys.base_prefix}
    else:  # pragma: no cover - another interpreter configured
        import subprocess

        out = subprocess.run(
            [python, "-c", "import sys;print(sys.prefix);print(sys.base_prefix)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        prefixes = set(out)
    real = {os.path.realpath(p) for p in prefixes} | prefixes
    return tuple(sorted(p for p in real if not (p == "/usr" or p.startswith("/usr/"))))


class BwrapDriver(SandboxDriver):
    """Isolated sandboxes with bubblewrap (Linux user namespaces)."""

    name = "bwrap"
    isolated = True

    def __init__(self, config: BwrapConfig | None = None) -> None:
        self.config = config or BwrapConfig()
        bw = shutil.which(self.config.bwrap)
        if bw is None:
            raise Unavailable("bubblewrap (bwrap) is not installed", code="driver_unavailable")
        self._bwrap = bw
        self._prefixes = self.config.python_prefixes or _python_prefixes(self.config.python)
        self._cgroups = CgroupManager(enabled=self.config.use_cgroups)
        self._tmpfs_size = _supports(bw, "--size")
        for name in sweep_stale_runtime_dirs(self.config.runtime_root):
            stale = self._cgroups.existing(name)
            if stale is not None:
                stale.remove()

    @staticmethod
    def available() -> bool:
        """True if bubblewrap is installed and can create namespaces here."""
        bw = shutil.which("bwrap")
        if bw is None:
            return False
        import subprocess

        try:
            res = subprocess.run(
                [bw, "--unshare-all", "--ro-bind", "/", "/", "--", "/bin/true"],
                capture_output=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return res.returncode == 0

    def _write_etc(self, runtime: Path) -> Path:
        etc = runtime / "etc"
        etc.mkdir()
        (etc / "passwd").write_text(
            f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:{WORKSPACE_MOUNT}:/bin/bash\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        (etc / "group").write_text(f"root:x:0:\nsandbox:x:{SANDBOX_UID}:\nnogroup:x:65534:\n")
        (etc / "hosts").write_text("127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost\n")
        (etc / "hostname").write_text("sandbox\n")
        return etc

    def build_argv(
        self, spec: SandboxSpec, runtime: Path, key: str, *, cpu_watchdog: bool = False, fds: tuple[int, ...] = ()
    ) -> list[str]:
        """The full command line that starts ``spec`` (exposed for tests and debugging).

        ``fds``: the read end of the seccomp program and the write end of bwrap's info pipe, when present.
        """
        etc = runtime / "etc"
        a: list[str] = [self._bwrap, "--unshare-all", "--unshare-user"]
        if spec.network:
            a.append("--share-net")
        a += ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--disable-userns"]
        a += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox"]
        a += ["--ro-bind", "/usr", "/usr"]
        for name in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
            host = Path("/") / name
            if host.is_symlink():
                a += ["--symlink", os.readlink(host), f"/{name}"]
            elif host.is_dir():
                a += ["--ro-bind", str(host), f"/{name}"]
        a += ["--proc", "/proc", "--dev", "/dev"]
        for tmp in ("/tmp", "/dev/shm"):
            if self._tmpfs_size:  # bounded even without a memory cgroup
                a += ["--size", str(spec.resources.memory_mb * 1024 * 1024)]
            a += ["--tmpfs", tmp]
        # After the private /tmp: an interpreter or venv that lives under /tmp stays visible.
        for prefix in self._prefixes:
            a += ["--ro-bind", prefix, prefix]
        for extra in self.config.extra_ro_binds:
            a += ["--ro-bind-try", extra, extra]
        a += ["--dir", "/etc"]
        for name in _ETC_FILES + _ETC_DIRS:
            a += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        if spec.network:
            for name in _NET_ETC + _NET_ETC_DIRS:
                a += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        for name in ("passwd", "group", "hosts", "hostname"):
            a += ["--ro-bind", str(etc / name), f"/etc/{name}"]
        a += ["--bind", str(spec.workspace), WORKSPACE_MOUNT]
        if self._tmpfs_size:
            a += ["--size", str(RUNTIME_TMPFS_BYTES)]
        a += ["--perms", "0700", "--tmpfs", RUNTIME_MOUNT]
        for name in ("kernel.json", "agent.json"):
            a += ["--ro-bind", str(runtime / name), f"{RUNTIME_MOUNT}/{name}"]
        a += ["--ro-bind", str(AGENT_SOURCE), AGENT_MOUNT]
        a += ["--remount-ro", "/", "--chdir", WORKSPACE_MOUNT, "--clearenv"]
        for name, value in self._sandbox_env(spec).items():
            a += ["--setenv", name, value]
        config = {
            "workspace": WORKSPACE_MOUNT,
            "connection_file": f"{RUNTIME_MOUNT}/kernel.json",
            "ipc_prefix": f"{RUNTIME_MOUNT}/k",
            "kernel_log": f"{RUNTIME_MOUNT}/kernel.log",
            "env": self._sandbox_env(spec),
            "rlimits": rlimits_for(spec.resources),
            "cpu_seconds": spec.resources.cpu_seconds,
            "cpu_watchdog": cpu_watchdog,
        }
        (runtime / "agent.json").write_text(json.dumps(config))
        if len(fds) == 2:
            a += ["--seccomp", str(fds[0]), "--info-fd", str(fds[1])]
        elif fds:
            a += ["--info-fd", str(fds[0])]
        a += ["--", self.config.python, "-s", AGENT_MOUNT, f"{RUNTIME_MOUNT}/agent.json"]
        return a

    def _sandbox_env(self, spec: SandboxSpec) -> dict[str, str]:
        bindir = os.path.dirname(self.config.python)
        env = {
            "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": WORKSPACE_MOUNT,
            "USER": "sandbox",
            "LOGNAME": "sandbox",
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TMPDIR": "/tmp",
            "IPYTHONDIR": "/tmp/.ipython",
            "MPLCONFIGDIR": "/tmp/.matplotlib",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "MALLOC_ARENA_MAX": "2",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PORTSIDE_WORKSPACE": WORKSPACE_MOUNT,
        }
        env.update(spec.env)
        env.pop("JPY_PARENT_PID", None)
        return env

    async def start(self, spec: SandboxSpec) -> SandboxHandle:
        """Start the sandbox and return when its kernel answers (about half a second)."""
        check_env(spec.env)
        if not spec.workspace.is_dir():
            raise Unavailable(f"workspace {spec.workspace} does not exist", code="sandbox_start_failed")
        spec = spec.model_copy(update={"workspace": real_path(spec.workspace)})
        runtime = await asyncio.to_thread(new_runtime_dir, self.config.runtime_root)
        key = secrets.token_hex(16)
        (runtime / "kernel.json").write_text(json.dumps(connection_info(f"{RUNTIME_MOUNT}/k", key)))
        self._write_etc(runtime)
        cgroup = await asyncio.to_thread(self._cgroups.create, runtime.name, spec.resources)
        info_r, info_w = os.pipe()
        seccomp = filter_fd()
        fds = (info_w,) if seccomp is None else (seccomp, info_w)
        watchdog = cgroup is None or cgroup.cpu_dir is None
        argv = self.build_argv(spec, runtime, key, cpu_watchdog=watchdog, fds=fds)
        # Pass the options through a pipe (--args) so that host paths do not show in /proc/1/cmdline.
        split = argv.index("--")
        rfd, wfd = os.pipe()
        with os.fdopen(wfd, "wb") as fh:
            fh.write(b"".join(arg.encode() + b"\0" for arg in argv[1:split]))
        argv = [argv[0], "--args", str(rfd), *argv[split:]]
        if cgroup is not None:
            # Join the cgroup before exec so that every descendant is born inside it. The shell gets (and
            # leaves bwrap, the sandbox's pid 1) an empty environment: no host PATH, PWD or cgroup paths.
            argv = [
                "/bin/sh",
                "-c",
                'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 97; shift; n=$((n-1)); done; '
                'unset PWD; exec "$@"',
                "sh",
                str(len(cgroup.procs_files)),
                *cgroup.procs_files,
                *argv,
            ]
        env: dict[str, str] = {}
        handle = AgentSandbox(
            spec,
            argv=argv,
            runtime_dir=runtime,
            inside_workspace=WORKSPACE_MOUNT,
            host_ipc_prefix="",  # known once bwrap reports the sandbox's pid 1
            key=key,
            cgroup=cgroup,
            process_env=env,
            pass_fds=(rfd, *fds),
            info_fd=info_r,
            inside_runtime=RUNTIME_MOUNT,
            inside_ipc_prefix=f"{RUNTIME_MOUNT}/k",
        )
        await handle.launch(self.config.start_timeout)
        return handle
