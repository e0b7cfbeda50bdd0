# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""``client.admin``: server housekeeping (admin key)."""

from __future__ import annotations

from portside._sync._http import HTTP
from portside.types.admin import GcReport


class Admin:
    """Operations on the server itself."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def gc(self) -> GcReport:
        """Purge now everything past its retention (``POST /v1/admin/gc``); returns what went."""
        return GcReport.model_validate(self._http.json("POST", "/v1/admin/gc"))
