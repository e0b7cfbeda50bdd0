"""A stand-in driver for when the configured one cannot run on this machine.

The server still starts (every other area works); sandbox calls answer 503
``sandbox_driver_unavailable`` with the reason and the fix, which are also logged at start-up and
listed in ``/v1/health`` warnings and ``/v1/ready`` checks.
"""

from __future__ import annotations

from typing import Any

from portside.server.errors import Unavailable

from .base import SandboxDriver, SandboxHandle, SandboxSpec

#: How to make each driver available, by driver name.
FIXES: dict[str, str] = {
    "bwrap": "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and restart Portside, "
    "or point PORTSIDE_SANDBOX_BWRAP at the bwrap binary",
}


class DriverUnavailable(Unavailable):
    """503: sandboxes cannot start on this server (see ``details.fix``)."""

    code = "sandbox_driver_unavailable"


class UnavailableDriver(SandboxDriver):
    """Refuses every start with :class:`DriverUnavailable`."""

    isolated = True

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        self.fix = FIXES.get(name, f"check PORTSIDE_SANDBOX_DRIVER={name!r}")

    def details(self) -> dict[str, Any]:
        """What health and error bodies say about the driver."""
        return {"driver": self.name, "available": False, "reason": self.reason, "fix": self.fix}

    def error(self) -> DriverUnavailable:
        return DriverUnavailable(f"sandboxes are unavailable: {self.reason}; fix: {self.fix}", details=self.details())

    async def start(self, spec: SandboxSpec) -> SandboxHandle:
        raise self.error()
