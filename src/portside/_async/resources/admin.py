"""``client.admin``: server housekeeping (admin key)."""

from __future__ import annotations

from portside._async._http import AsyncHTTP
from portside.types.admin import GcReport


class AsyncAdmin:
    """Operations on the server itself."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def gc(self) -> GcReport:
        """Purge now everything past its retention (``POST /v1/admin/gc``); returns what went."""
        return GcReport.model_validate(await self._http.json("POST", "/v1/admin/gc"))
