"""``client.secrets``: per-agent secrets (values only from ``get``; every read is audited)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from portside._async._http import AsyncHTTP
from portside.types.secrets import Secret, SecretAuditEvent, SecretAuditPage, SecretBackend, SecretInfo, SecretList


class AsyncSecrets:
    """Store, read, list and delete secrets of agents; configure the backend; read the audit log."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def set(self, agent_id: str, name: str, value: str, *, description: str | None = None) -> SecretInfo:
        body = {"value": value, "description": description}
        return SecretInfo.model_validate(await self._http.json("PUT", f"/v1/secrets/{agent_id}/{name}", json=body))

    async def get(self, agent_id: str, name: str) -> Secret:
        """The secret with its ``value`` (audited)."""
        return Secret.model_validate(await self._http.json("GET", f"/v1/secrets/{agent_id}/{name}"))

    async def list(self, agent_id: str) -> SecretList:
        """Names (and metadata) of an agent's secrets."""
        return SecretList.model_validate(await self._http.json("GET", f"/v1/secrets/{agent_id}"))

    async def delete(self, agent_id: str, name: str) -> None:
        await self._http.json("DELETE", f"/v1/secrets/{agent_id}/{name}")

    async def backend(self) -> SecretBackend:
        return SecretBackend.model_validate(await self._http.json("GET", "/v1/secret-backend"))

    async def configure_backend(self, backend_type: str, **config: Any) -> SecretBackend:
        """Switch the backend (admin): ``encrypted_file`` (file_path, encryption_key), ``os_keychain``,
        ``vault`` (vault_config={url, auth_method, token, ...})."""
        body = {"backend_type": backend_type, **config}
        return SecretBackend.model_validate(await self._http.json("PUT", "/v1/secret-backend", json=body))

    async def audit(
        self, *, agent_id: str | None = None, action: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> SecretAuditPage:
        params = {"agent_id": agent_id, "action": action, "limit": limit, "cursor": cursor}
        return SecretAuditPage.model_validate(await self._http.json("GET", "/v1/audit/secrets", params=params))

    async def iter_audit(
        self, *, agent_id: str | None = None, action: str | None = None, page_size: int = 100
    ) -> AsyncIterator[SecretAuditEvent]:
        """Every matching audit event, fetched page by page."""
        cursor: str | None = None
        while True:
            page = await self.audit(agent_id=agent_id, action=action, limit=page_size, cursor=cursor)
            for item in page.items:
                yield item
            if not page.next_cursor or page.next_cursor == cursor:
                return
            cursor = page.next_cursor
