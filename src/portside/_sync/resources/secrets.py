# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""``client.secrets``: per-agent secrets (values only from ``get``; every read is audited)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from portside._sync._http import HTTP
from portside.types.secrets import Secret, SecretAuditEvent, SecretAuditPage, SecretBackend, SecretInfo, SecretList


class Secrets:
    """Store, read, list and delete secrets of agents; configure the backend; read the audit log."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def set(self, agent_id: str, name: str, value: str, *, description: str | None = None) -> SecretInfo:
        body = {"value": value, "description": description}
        return SecretInfo.model_validate(self._http.json("PUT", f"/v1/secrets/{agent_id}/{name}", json=body))

    def get(self, agent_id: str, name: str) -> Secret:
        """The secret with its ``value`` (audited)."""
        return Secret.model_validate(self._http.json("GET", f"/v1/secrets/{agent_id}/{name}"))

    def list(self, agent_id: str) -> SecretList:
        """Names (and metadata) of an agent's secrets."""
        return SecretList.model_validate(self._http.json("GET", f"/v1/secrets/{agent_id}"))

    def delete(self, agent_id: str, name: str) -> None:
        self._http.json("DELETE", f"/v1/secrets/{agent_id}/{name}")

    def backend(self) -> SecretBackend:
        return SecretBackend.model_validate(self._http.json("GET", "/v1/secret-backend"))

    def configure_backend(self, backend_type: str, **config: Any) -> SecretBackend:
        """Switch the backend (admin): ``encrypted_file`` (file_path, encryption_key), ``os_keychain``,
        ``vault`` (vault_config={url, auth_method, token, ...})."""
        body = {"backend_type": backend_type, **config}
        return SecretBackend.model_validate(self._http.json("PUT", "/v1/secret-backend", json=body))

    def audit(
        self, *, agent_id: str | None = None, action: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> SecretAuditPage:
        params = {"agent_id": agent_id, "action": action, "limit": limit, "cursor": cursor}
        return SecretAuditPage.model_validate(self._http.json("GET", "/v1/audit/secrets", params=params))

    def iter_audit(
        self, *, agent_id: str | None = None, action: str | None = None, page_size: int = 100
    ) -> Iterator[SecretAuditEvent]:
        """Every matching audit event, fetched page by page."""
        cursor: str | None = None
        while True:
            page = self.audit(agent_id=agent_id, action=action, limit=page_size, cursor=cursor)
            for item in page.items:
                yield item
            if not page.next_cursor or page.next_cursor == cursor:
                return
            cursor = page.next_cursor
