"""The UNSAFE ``process`` driver: same interface as bwrap, no isolation at all.

Code runs as the server's own user, sees the whole host filesystem and network, and can signal any process
the server can. rlimits are applied (memory, open files, CPU per shell command) but nothing else. Use it only
where bubblewrap cannot run and every caller is trusted; it logs a loud warning on every start.
Inside this driver the workspace is the host directory itself (``PORTSIDE_WORKSPACE`` holds its path), so
code that hard-codes ``/workspace`` will not find it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sys
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
from .base import SandboxDriver, SandboxHandle, SandboxSpec
from .bwrap import default_runtime_root
from .limits import rlimits_for

log = logging.getLogger(__name__)


class ProcessDriver(SandboxDriver):
    """Runs the kernel and shell commands as plain host processes. NOT a security boundary."""

    name = "process"
    isolated = False

    def __init__(
        self, python: str = sys.executable, runtime_root: Path | None = None, start_timeout: float = 30.0
    ) -> None:
        self.python = python
        self.runtime_root = runtime_root or default_runtime_root()
        self.start_timeout = start_timeout
        sweep_stale_runtime_dirs(self.runtime_root)

    async def start(self, spec: SandboxSpec) -> SandboxHandle:
        """Start an unisolated sandbox (logs a warning)."""
        log.warning(
            "UNSAFE sandbox driver 'process': sandbox %s runs WITHOUT ISOLATION as uid %d "
            "(host files, network and processes are reachable). Use the bwrap driver in production.",
            spec.sandbox_id,
            os.getuid(),
        )
        check_env(spec.env)
        if not spec.workspace.is_dir():
            raise Unavailable(f"workspace {spec.workspace} does not exist", code="sandbox_start_failed")
        workspace = real_path(spec.workspace)
        spec = spec.model_copy(update={"workspace": workspace})
        runtime = await asyncio.to_thread(new_runtime_dir, self.runtime_root)
        key = secrets.token_hex(16)
        prefix = str(runtime / "k")
        (runtime / "kernel.json").write_text(json.dumps(connection_info(prefix, key)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTSIDE_")}
        env.update(
            {
                "IPYTHONDIR": str(runtime / "ipython"),
                "MPLBACKEND": "module://matplotlib_inline.backend_inline",
                "PORTSIDE_WORKSPACE": str(workspace),
            }
        )
        env.update(spec.env)
        env.pop("JPY_PARENT_PID", None)
        config = {
            "workspace": str(workspace),
            "connection_file": str(runtime / "kernel.json"),
            "ipc_prefix": prefix,
            "kernel_log": str(runtime / "kernel.log"),
            "env": env,
            # RLIMIT_NPROC counts every process of the server's uid here: leave it off.
            "rlimits": {k: v for k, v in rlimits_for(spec.resources).items() if k != "RLIMIT_NPROC"},
            "cpu_seconds": spec.resources.cpu_seconds,
            "stats_scope": "descendants",
        }
        (runtime / "agent.json").write_text(json.dumps(config))
        handle = AgentSandbox(
            spec,
            argv=[self.python, "-s", str(AGENT_SOURCE), str(runtime / "agent.json")],
            runtime_dir=runtime,
            inside_workspace=str(workspace),
            host_ipc_prefix=prefix,
            key=key,
            process_env=env,
            graceful_stop=True,
        )
        await handle.launch(self.start_timeout)
        return handle
