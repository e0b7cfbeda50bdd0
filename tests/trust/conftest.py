"""Fixtures for the trust tests: corpus loading and an isolated schemapin 1.3.0 interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path
from typing import Any

import pytest

SCHEMAPIN_VERSION = "1.3.0"
# schemapin pins cryptography==46.0.5 / requests==2.32.4, which clash with the project venv,
# so it lives in its own venv. Override with PORTSIDE_SCHEMAPIN_PYTHON.
SCHEMAPIN_VENV = Path(os.environ.get("PORTSIDE_SCHEMAPIN_VENV", "/tmp/schemapin-venv"))


def _has_schemapin(python: str) -> bool:
    probe = f"import schemapin, sys; sys.exit(0 if schemapin.__version__ == '{SCHEMAPIN_VERSION}' else 1)"
    try:
        return subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def schemapin_python() -> str:
    """Path of a python that imports schemapin 1.3.0 (built on first use; skip if impossible)."""
    override = os.environ.get("PORTSIDE_SCHEMAPIN_PYTHON")
    if override and _has_schemapin(override):
        return override
    python = SCHEMAPIN_VENV / "bin" / "python"
    if python.exists() and _has_schemapin(str(python)):
        return str(python)
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(SCHEMAPIN_VENV)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"schemapin=={SCHEMAPIN_VERSION}"],
            check=True, capture_output=True, timeout=300,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot build a schemapin {SCHEMAPIN_VERSION} venv: {exc}")
    if not _has_schemapin(str(python)):
        pytest.skip("schemapin venv built but schemapin is not importable")
    return str(python)


@pytest.fixture
def run_schemapin(schemapin_python: str) -> Any:
    """Run a script under the schemapin interpreter: JSON in on stdin, JSON out on stdout."""

    def run(script: str, payload: dict[str, Any]) -> Any:
        proc = subprocess.run(
            [schemapin_python, "-c", script],
            input=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            capture_output=True, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        return json.loads(proc.stdout)

    return run
