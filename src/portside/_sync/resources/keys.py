# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""``client.keys``: API key management (admin)."""

from __future__ import annotations

import builtins

from portside._sync._http import HTTP
from portside.types.keys import ApiKey, CreatedApiKey


class Keys:
    """Create, list and revoke API keys."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def create(
        self, *, name: str = "", scopes: list[str] | None = None, owner: str | None = None
    ) -> CreatedApiKey:
        """Create a key; ``.key`` holds its secret, shown only once."""
        body = {"name": name, "scopes": scopes or ["read", "write"], "owner": owner}
        return CreatedApiKey.model_validate(self._http.json("POST", "/v1/keys", json=body))

    def list(self) -> builtins.list[ApiKey]:
        data = self._http.json("GET", "/v1/keys")
        return [ApiKey.model_validate(k) for k in data["items"]]

    def revoke(self, key_id: str) -> ApiKey:
        return ApiKey.model_validate(self._http.json("DELETE", f"/v1/keys/{key_id}"))
