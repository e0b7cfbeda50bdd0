"""The README's SDK example runs as written against a live server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ADMIN_KEY, LiveServer

ROOT = Path(__file__).resolve().parents[2]


def _sdk_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Use the SDK") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no python block under 'Use the SDK'"
    return match.group(1)


@pytest.mark.bwrap
def test_readme_sdk_example_runs(live_server: LiveServer, tmp_path: Path) -> None:
    (tmp_path / ".portside").mkdir()
    (tmp_path / ".portside" / "admin_key").write_text(ADMIN_KEY + "\n")
    env = {**os.environ, "PORTSIDE_URL": live_server.url}
    env.pop("PORTSIDE_API_KEY", None)
    result = subprocess.run(
        [sys.executable, "-c", _sdk_example()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "ok" and "42" in lines[1] and lines[-1].startswith("404 not_found")


@pytest.mark.bwrap
def test_readme_sdk_example_runs_with_the_key_in_the_environment(live_server: LiveServer, tmp_path: Path) -> None:
    """No key file, only PORTSIDE_API_KEY: the snippet must not open .portside/admin_key."""
    env = {**os.environ, "PORTSIDE_URL": live_server.url, "PORTSIDE_API_KEY": ADMIN_KEY}
    result = subprocess.run(
        [sys.executable, "-c", _sdk_example()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "ok"


def test_readme_install_section_is_true() -> None:
    """Portside is not on the package index: the README must not tell people to `pip install portside`."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Install as a package") : readme.index("## Use the SDK")]
    assert "pip install portside" not in section and "pip install 'portside[" not in section
    assert "pip install ." in section and "pip wheel" in section
