"""Profiles: named presets of resources and capabilities a sandbox is created from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from portside.server.errors import InvalidInput
from portside.server.sandboxes.drivers.base import Resources

CAPABILITY_PYTHON = "python"
CAPABILITY_SHELL = "shell"
CAPABILITY_FILESYSTEM = "filesystem"
CAPABILITY_BROWSER = "browser"


class CapabilityNotSupported(InvalidInput):
    """The sandbox's profile lacks the capability a request needs (400)."""

    code = "capability_not_supported"


@dataclass(frozen=True)
class Profile:
    """A sandbox preset."""

    id: str
    description: str
    capabilities: tuple[str, ...]
    resources: Resources = field(default_factory=Resources)
    idle_timeout: int = 1800
    image: str = "portside/bwrap-python"

    def require(self, capability: str) -> None:
        """Raise ``capability_not_supported`` unless the profile has ``capability``."""
        if capability not in self.capabilities:
            raise CapabilityNotSupported(
                f"profile '{self.id}' does not support the '{capability}' capability",
                details={"profile": self.id, "capability": capability, "available": list(self.capabilities)},
            )

    def to_wire(self, *, detail: bool = False) -> dict[str, Any]:
        """The Bay ``ProfileInfo`` shape."""
        res = self.resources
        out: dict[str, Any] = {
            "id": self.id,
            "image": self.image,
            "resources": {
                "cpus": res.cpus,
                "memory": f"{res.memory_mb}m",
                "memory_mb": res.memory_mb,
                "cpu_seconds": res.cpu_seconds,
                "max_processes": res.max_processes,
                "max_open_files": res.max_open_files,
                "network": res.network,
            },
            "capabilities": list(self.capabilities),
            "idle_timeout": self.idle_timeout,
            "description": self.description,
        }
        if detail:
            out["containers"] = [
                {
                    "name": "ship",
                    "runtime_type": "ship",
                    "capabilities": list(self.capabilities),
                    "resources": out["resources"],
                }
            ]
        return out


DEFAULT_PROFILES: tuple[Profile, ...] = (
    Profile(
        id="python-default",
        description="Python 3 (stateful Jupyter kernel), shell and files; no network.",
        capabilities=(CAPABILITY_PYTHON, CAPABILITY_SHELL, CAPABILITY_FILESYSTEM),
    ),
    Profile(
        id="python-large",
        description="Like python-default with 4 GiB of memory and more processes.",
        capabilities=(CAPABILITY_PYTHON, CAPABILITY_SHELL, CAPABILITY_FILESYSTEM),
        resources=Resources(memory_mb=4096, max_processes=512, cpus=2.0),
    ),
    Profile(
        id="browser-python",
        description="Python, shell, files and a headless Chromium driven with agent-browser commands; no network.",
        capabilities=(CAPABILITY_PYTHON, CAPABILITY_SHELL, CAPABILITY_FILESYSTEM, CAPABILITY_BROWSER),
        # Chromium: many threads, long-lived processes, and no RLIMIT_AS (see drivers/limits.py).
        resources=Resources(memory_mb=2048, max_processes=512, cpu_seconds=3600, cpus=2.0, limit_address_space=False),
    ),
    Profile(
        id="shell-minimal",
        description="Shell and files only (no Python kernel capability); no network.",
        capabilities=(CAPABILITY_SHELL, CAPABILITY_FILESYSTEM),
        resources=Resources(memory_mb=512),
    ),
)


class ProfileRegistry:
    """The profiles this server offers."""

    def __init__(self, profiles: tuple[Profile, ...] = DEFAULT_PROFILES) -> None:
        self._profiles = {p.id: p for p in profiles}

    def get(self, profile_id: str) -> Profile:
        try:
            return self._profiles[profile_id]
        except KeyError:
            raise InvalidInput(
                f"unknown profile '{profile_id}'",
                details={"available": sorted(self._profiles)},
            ) from None

    def all(self) -> list[Profile]:
        return list(self._profiles.values())

    def add(self, profile: Profile) -> None:
        self._profiles[profile.id] = profile
