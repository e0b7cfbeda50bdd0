"""Shared checks for browser tests: Chromium and bubblewrap must be present (CI must have them)."""

from __future__ import annotations

import pytest

from portside.server.sandboxes.browser_session import find_chromium
from tests.conftest import IN_CI
from tests.drivers.fixtures import require_bwrap


def require_browser() -> None:
    """Skip (fail in CI) unless Chromium is installed and bwrap sandboxes work here."""
    if find_chromium() is None:
        if IN_CI:
            pytest.fail("Chromium is not installed (CI must install Debian's `chromium` package)")
        pytest.skip("Chromium is not installed (apt-get install chromium): browser tests need /usr/bin/chromium")
    try:
        import playwright  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("the playwright package is not installed")
        pytest.skip("the playwright package is not installed (pip install playwright)")
    require_bwrap()
