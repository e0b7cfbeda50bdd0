# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""``client.cargos``: persistent volumes that outlive sandboxes (mount one with ``cargo_id=``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from portside._sync._http import HTTP, new_idempotency_key
from portside.types.sandboxes import CargoInfo, CargoPage


class Cargos:
    """Create, list, inspect and delete external cargos."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def create(self, *, size_limit_mb: int | None = None, idempotency_key: str | None = None) -> CargoInfo:
        """Create an external cargo (server default size when ``size_limit_mb`` is None).

        An idempotency key is generated when none is given, so retries never create two cargos.
        """
        body: dict[str, Any] | None = {"size_limit_mb": size_limit_mb} if size_limit_mb is not None else None
        data = self._http.json(
            "POST", "/v1/cargos", json=body, idempotency_key=idempotency_key or new_idempotency_key()
        )
        return CargoInfo.model_validate(data)

    def get(self, cargo_id: str) -> CargoInfo:
        """A cargo, with ``size_bytes`` in use."""
        return CargoInfo.model_validate(self._http.json("GET", f"/v1/cargos/{cargo_id}"))

    def list(self, *, limit: int = 50, cursor: str | None = None, managed: bool | None = None) -> CargoPage:
        """One page of cargos: external ones by default, sandboxes' own with ``managed=True``."""
        params = {"limit": limit, "cursor": cursor, "managed": None if managed is None else str(managed).lower()}
        return CargoPage.model_validate(self._http.json("GET", "/v1/cargos", params=params))

    def iter_all(self, *, managed: bool | None = None, page_size: int = 100) -> Iterator[CargoInfo]:
        """Every cargo, fetched page by page."""
        cursor: str | None = None
        while True:
            page = self.list(limit=page_size, cursor=cursor, managed=managed)
            for item in page.items:
                yield item
            if not page.next_cursor or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    def delete(self, cargo_id: str) -> None:
        """Delete a cargo and its files (``ConflictError`` while a sandbox uses it)."""
        self._http.request("DELETE", f"/v1/cargos/{cargo_id}")
