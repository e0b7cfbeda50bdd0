"""The driver interface: what a SandboxService can ask of any isolation backend.

A driver turns a :class:`SandboxSpec` into a running :class:`SandboxHandle`. The handle runs Python in a
stateful Jupyter kernel and shell commands next to it, both confined to the sandbox, and can be
interrupted, inspected and stopped. Files are not part of the interface: the service reads and writes the
host workspace directory directly (see :mod:`.paths`).
"""

from __future__ import annotations

import abc
import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

WORKSPACE_MOUNT = "/workspace"
"""Where the workspace appears inside an isolated sandbox."""


class Resources(BaseModel):
    """Per-sandbox limits. Enforcement details live in each driver's module docstring."""

    model_config = ConfigDict(frozen=True)

    memory_mb: int = Field(default=1024, ge=64, description="Memory cap (cgroup and RLIMIT_AS).")
    cpu_seconds: int = Field(
        default=600,
        ge=1,
        description="CPU time cap of each shell command (RLIMIT_CPU); without a cpu cgroup, of every process "
        "of the sandbox but the agent and the kernel.",
    )
    cpus: float = Field(
        default=1.0, gt=0, le=256, description="CPU rate cap of the whole sandbox in cores (cpu cgroup)."
    )
    max_processes: int = Field(default=256, ge=16, description="Tasks (processes+threads) in the sandbox.")
    max_open_files: int = Field(default=1024, ge=64, description="RLIMIT_NOFILE per process.")
    network: bool = Field(default=False, description="Give the sandbox the host network.")
    disk_mb: int | None = Field(
        default=None,
        ge=1,
        description="Size limit of the sandbox's own (fresh) workspace in MB; None: the server default. Enforced "
        "by the volume backend (see volumes.py), not by the driver; an attached cargo keeps its own limit.",
    )
    limit_address_space: bool = Field(
        default=True,
        description="Cap each process's address space (RLIMIT_AS). Off for Chromium, whose V8 reserves ~1 TB of "
        "address space it never touches; the memory cgroup (when available) still caps the whole sandbox.",
    )


class SandboxSpec(BaseModel):
    """What to start: one sandbox with its host workspace directory, limits and environment."""

    sandbox_id: str
    workspace: Path
    resources: Resources = Field(default_factory=Resources)
    env: dict[str, str] = Field(default_factory=dict)

    @property
    def network(self) -> bool:
        return self.resources.network

    def profile_key(self) -> str:
        """A stable key of everything but identity and workspace: sandboxes with one key are interchangeable."""
        raw = json.dumps({"r": self.resources.model_dump(), "e": self.env}, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


class PythonResult(BaseModel):
    """Outcome of one ``exec_python`` call (maps onto Bay's ``PythonExecResult``)."""

    success: bool
    output: str = Field(default="", description="Everything written to stdout.")
    error: str | None = Field(default=None, description="stderr text and/or the traceback (ANSI stripped).")
    stderr: str = ""
    data: dict[str, Any] = Field(
        default_factory=dict, description="mime -> value of the last rich output (execute_result or display)."
    )
    displays: list[dict[str, Any]] = Field(default_factory=list, description="Every rich output, in order.")
    images: list[str] = Field(default_factory=list, description="base64 image/png payloads, in order.")
    result: str | None = Field(default=None, description="text/plain of the execute_result, if any.")
    execution_count: int | None = None
    ename: str | None = None
    evalue: str | None = None
    timed_out: bool = False
    truncated: bool = Field(default=False, description="stdout or stderr went past 1 MiB and was cut.")
    execution_time_ms: int = 0


class ShellResult(BaseModel):
    """Outcome of one ``exec_shell`` call (maps onto Bay's ``ShellExecResult``)."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    success: bool
    timed_out: bool = False
    truncated: bool = False
    execution_time_ms: int = 0


class SandboxStats(BaseModel):
    """A point-in-time view of a running sandbox."""

    alive: bool
    kernel_alive: bool
    memory_bytes: int = Field(default=0, description="Sum of RSS of the sandbox's processes.")
    cpu_seconds: float = Field(default=0.0, description="CPU time of the live processes.")
    processes: int = 0
    threads: int = 0
    uptime_s: float = 0.0
    cgroup_memory_bytes: int | None = Field(default=None, description="cgroup memory usage when one is used.")
    cgroup_version: int | None = Field(default=None, description="1 or 2 when a per-sandbox cgroup enforces limits.")


class SandboxHandle(abc.ABC):
    """A running sandbox. All methods are safe to call from one event loop; Python runs serialized."""

    spec: SandboxSpec

    @property
    @abc.abstractmethod
    def alive(self) -> bool:
        """True while the sandbox processes run."""

    @property
    def sandbox_id(self) -> str:
        return self.spec.sandbox_id

    @property
    def workspace(self) -> Path:
        return self.spec.workspace

    @abc.abstractmethod
    async def exec_python(self, code: str, timeout: float = 30.0) -> PythonResult:
        """Run ``code`` in the sandbox kernel; state persists across calls. Timeouts interrupt the kernel."""

    @abc.abstractmethod
    async def exec_shell(
        self,
        command: str,
        cwd: str | None = None,
        timeout: float = 30.0,
        env: dict[str, str] | None = None,
    ) -> ShellResult:
        """Run ``command`` with bash in the sandbox. ``cwd`` is relative to the workspace (or /workspace/...)."""

    @abc.abstractmethod
    async def interrupt(self) -> None:
        """Interrupt the running Python execution (SIGINT) and kill running shell commands."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Kill every process of the sandbox; the workspace stays. Idempotent."""

    @abc.abstractmethod
    async def stats(self) -> SandboxStats:
        """Resource usage of the sandbox."""

    async def adopt(self, sandbox_id: str, workspace: Path) -> None:
        """Give a pooled sandbox its identity once the pool has moved its workspace directory."""
        self.spec = self.spec.model_copy(update={"sandbox_id": sandbox_id, "workspace": workspace})


class SandboxDriver(abc.ABC):
    """Starts sandboxes. ``name`` is what ``PORTSIDE_SANDBOX_DRIVER`` selects."""

    name: str = "base"
    isolated: bool = True

    @abc.abstractmethod
    async def start(self, spec: SandboxSpec) -> SandboxHandle:
        """Start a sandbox for ``spec`` and return once its kernel answers."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release driver-wide resources (not the sandboxes)."""
