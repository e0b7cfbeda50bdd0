"""Sandbox isolation drivers: one interface, several backends.

``bwrap`` (default) isolates with bubblewrap; ``process`` runs without any isolation (opt-in, unsafe).
"""

from __future__ import annotations

from .base import (
    WORKSPACE_MOUNT,
    PythonResult,
    Resources,
    SandboxDriver,
    SandboxHandle,
    SandboxSpec,
    SandboxStats,
    ShellResult,
)
from .paths import DirectoryUsage, directory_usage, sandbox_path, workspace_relative
from .pool import WarmPool

__all__ = [
    "WORKSPACE_MOUNT",
    "DirectoryUsage",
    "PythonResult",
    "Resources",
    "SandboxDriver",
    "SandboxHandle",
    "SandboxSpec",
    "SandboxStats",
    "ShellResult",
    "WarmPool",
    "create_driver",
    "directory_usage",
    "sandbox_path",
    "workspace_relative",
]


def create_driver(name: str = "bwrap", *, bwrap: str = "bwrap") -> SandboxDriver:
    """The driver called ``name`` ("bwrap" or "process"); raises ``InvalidInput`` for others and
    ``Unavailable`` when the driver cannot run here (e.g. ``bwrap``, the bubblewrap binary, missing)."""
    if name == "bwrap":
        from .bwrap import BwrapConfig, BwrapDriver

        return BwrapDriver(BwrapConfig(bwrap=bwrap))
    if name == "process":
        from .process import ProcessDriver

        return ProcessDriver()
    from portside.server.errors import InvalidInput

    raise InvalidInput(f"unknown sandbox driver {name!r}", code="invalid_driver")
