"""A real ``portside serve`` in a child process, for crash and restart tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY


@contextmanager
def server_process(
    data_dir: Path,
    port: int,
    log: Path,
    *,
    db_url: str | None = None,
    graceful: bool = True,
    start_timeout: float = 40,
    env_overrides: dict[str, str | None] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start the server with its config in the environment; wait for ``/v1/health``.

    ``env_overrides`` sets (or, with None, removes) environment variables. On exit a still-running
    server is stopped with SIGINT (``graceful``) or killed.
    """
    env = {
        **os.environ,
        "PORTSIDE_DATA_DIR": str(data_dir),
        "PORTSIDE_PORT": str(port),
        "PORTSIDE_API_KEY": ADMIN_KEY,
        "PORTSIDE_SANDBOX_WARM_POOL": "0",
        "PORTSIDE_LOG_LEVEL": "WARNING",
    }
    if db_url:
        env["PORTSIDE_DATABASE_URL"] = db_url
    for name, value in (env_overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "portside.cli.main", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            if graceful:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            else:
                proc.kill()
            proc.wait()
