"""Per-agent secrets on a pluggable backend, with access control and an audit log.

* A namespace is an agent id. It belongs to the owner of the Symbiont agent of that id, else to the
  key owner that first stored a secret in it. The owner (with ``read`` / ``write``) may use it; other
  callers, and reads of a namespace nobody claimed, need the ``secrets`` scope (``admin`` implies it).
* Values live only in the backend (encrypted file by default, OS keychain, Vault). They never reach
  logs, error messages or list output, and every read (and write, delete, list, denial) is audited.
* The backend choice (``configure``, admin only) is stored encrypted in the database and restored at start.
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from portside.server.auth import Principal
from portside.server.clock import utcnow
from portside.server.deployments.tables import SymbiontAgentRow
from portside.server.errors import Forbidden, InvalidInput, NotFound
from portside.server.ids import new_id
from portside.server.logs import request_id_var
from portside.server.secrets.backends import (
    EncryptedFileBackend,
    SecretBackend,
    SecretValue,
    backend_from_config,
    validate_name,
)
from portside.server.secrets.crypto import SecretCipher
from portside.server.secrets.tables import SecretAuditRow, SecretBackendRow, SecretMetaRow, SecretNamespaceRow
from portside.server.store import Database

log = logging.getLogger("portside.secrets")

MAX_VALUE_BYTES = 64 * 1024
BACKEND_TYPES = ("encrypted_file", "os_keychain", "vault")
_CONFIG_AAD = "portside-secret-backend-config"


class SecretService:
    """Store, read, list and delete agents' secrets; configure the backend; list the audit log."""

    def __init__(
        self, db: Database, cipher: SecretCipher, data_dir: Path, backend: SecretBackend | None = None
    ) -> None:
        self.db = db
        self.cipher = cipher
        self.data_dir = Path(data_dir)
        self.backend: SecretBackend = backend or EncryptedFileBackend(self.data_dir / "secrets.json", cipher)
        self.backend_type = getattr(self.backend, "backend_type", "encrypted_file")

    # ------------------------------------------------------------------ backend

    async def start(self) -> None:
        """Restore the configured backend, if one was configured."""
        async with self.db.session() as s:
            row = await s.get(SecretBackendRow, "default")
        if row is None:
            return
        try:
            config = json.loads(self.cipher.decrypt_text(row.config_enc, _CONFIG_AAD))
            self._swap(backend_from_config(config, cipher=self.cipher, data_dir=self.data_dir), row.backend_type)
        except Exception as exc:  # keep serving on the default backend, say why (no config values)
            log.error(
                "cannot restore the %s secret backend (%s); using the encrypted file",
                row.backend_type,
                type(exc).__name__,
            )

    async def stop(self) -> None:
        await self.backend.aclose()

    def _swap(self, backend: SecretBackend, backend_type: str) -> None:
        self.backend = backend
        self.backend_type = backend_type

    async def configure(self, caller: Principal, config: Mapping[str, Any]) -> dict[str, Any]:
        """Switch the backend (``SecretBackendConfig`` shape); admin only. Returns no credentials.

        The new backend is checked first (Vault: reachable, credentials accepted); a failed check
        leaves the current backend in place (400 ``secret_backend_auth_failed``, 502
        ``secret_backend_unreachable`` / ``secret_backend_error``)."""
        caller.require("admin")
        kind = str(config.get("backend_type") or "")
        if kind not in BACKEND_TYPES:
            raise InvalidInput(f"backend_type must be one of {list(BACKEND_TYPES)}", code="invalid_secret_backend")
        clean = {k: v for k, v in config.items() if v is not None}
        backend = backend_from_config(clean, cipher=self.cipher, data_dir=self.data_dir)
        try:
            await backend.check()
        except BaseException:
            await backend.aclose()
            raise
        token = self.cipher.encrypt_text(json.dumps(clean), _CONFIG_AAD)
        async with self.db.transaction() as s:
            row = await s.get(SecretBackendRow, "default")
            if row is None:
                row = SecretBackendRow(id="default", backend_type=kind, config_enc=token, updated_by=caller.owner)
                s.add(row)
            row.backend_type = kind
            row.config_enc = token
            row.updated_by = caller.owner
            row.updated_at = utcnow()
        old = self.backend
        self._swap(backend, kind)
        if old is not backend:
            await old.aclose()
        await self._audit(caller, "configure", "ok", "*", None, None)
        log.info("secret backend set to %s by %s", kind, caller.owner)
        return self.describe()

    def describe(self) -> dict[str, Any]:
        """The active backend, without credentials."""
        out: dict[str, Any] = {"backend_type": self.backend_type, "configured": True}
        if isinstance(self.backend, EncryptedFileBackend):
            out["file_path"] = str(self.backend.path)
        return out

    # ------------------------------------------------------------------ access

    async def _owner(self, agent_id: str) -> str | None:
        async with self.db.session() as s:
            agent = await s.get(SymbiontAgentRow, agent_id)
            if agent is not None:
                return agent.owner
            ns = await s.get(SecretNamespaceRow, agent_id)
        return ns.owner if ns is not None else None

    async def _authorize(
        self, caller: Principal, agent_id: str, action: str, name: str | None, *, scope: str
    ) -> str | None:
        validate_name(agent_id, "agent_id")
        if name is not None:
            validate_name(name, "secret_name")
        owner = await self._owner(agent_id)
        # An unclaimed namespace is claimed by its first writer; reading one (a backend such as Vault
        # may hold entries Portside never wrote) needs the ``secrets`` scope.
        mine = owner == caller.owner or (owner is None and action == "write")
        if caller.has(scope) and (caller.has("secrets") or mine):
            return owner
        await self._audit(caller, action, "denied", agent_id, name, owner)
        need = "secrets" if caller.has(scope) else scope
        raise Forbidden(
            f"this API key may not {action} secrets of agent '{agent_id}'",
            code="secret_access_denied",
            details={"agent_id": agent_id, "required_scope": need},
        )

    async def _audit(
        self, caller: Principal, action: str, outcome: str, agent_id: str, name: str | None, owner: str | None
    ) -> None:
        rid = request_id_var.get()
        async with self.db.transaction() as s:
            s.add(
                SecretAuditRow(
                    id=new_id("aud"),
                    at=utcnow(),
                    action=action,
                    outcome=outcome,
                    agent_id=agent_id[:128],
                    secret_name=name[:128] if name else None,
                    actor=caller.owner,
                    key_id=caller.key_id,
                    namespace_owner=owner,
                    backend=self.backend_type,
                    request_id=None if rid == "-" else rid,
                )
            )

    # ------------------------------------------------------------------ secrets

    async def store(
        self,
        caller: Principal,
        agent_id: str,
        name: str,
        value: str | SecretValue | None,
        *,
        description: str | None = None,
    ) -> SecretMetaRow:
        """Create or replace a secret; returns its metadata (never the value)."""
        owner = await self._authorize(caller, agent_id, "write", name, scope="write")
        if value is None:
            raise InvalidInput(
                "secret_value is required", code="invalid_secret_value", details={"field": "secret_value"}
            )
        plain = value.reveal() if isinstance(value, SecretValue) else value
        if not isinstance(plain, str) or len(plain.encode("utf-8")) > MAX_VALUE_BYTES:
            raise InvalidInput(
                f"secret_value must be a string of at most {MAX_VALUE_BYTES} bytes",
                code="invalid_secret_value",
                details={"field": "secret_value"},
            )
        if description is not None and len(description) > 2000:
            raise InvalidInput("description is longer than 2000 characters")
        await self.backend.set(agent_id, name, SecretValue(plain))
        async with self.db.transaction() as s:
            if owner is None and await s.get(SecretNamespaceRow, agent_id) is None:
                s.add(SecretNamespaceRow(agent_id=agent_id, owner=caller.owner, created_at=utcnow()))
            meta = await s.get(SecretMetaRow, (agent_id, name))
            if meta is None:
                meta = SecretMetaRow(
                    agent_id=agent_id,
                    name=name,
                    description=description,
                    backend=self.backend_type,
                    created_by=caller.owner,
                )
                s.add(meta)
            else:
                meta.description = description if description is not None else meta.description
                meta.backend = self.backend_type
                meta.updated_at = utcnow()
        await self._audit(caller, "write", "ok", agent_id, name, owner or caller.owner)
        return meta

    async def get(self, caller: Principal, agent_id: str, name: str) -> tuple[SecretValue, SecretMetaRow | None]:
        """The value (wrapped) and metadata of one secret; the read is audited."""
        owner = await self._authorize(caller, agent_id, "read", name, scope="read")
        try:
            value = await self.backend.get(agent_id, name)
        except NotFound:
            await self._audit(caller, "read", "not_found", agent_id, name, owner)
            raise NotFound(
                f"secret '{name}' of agent '{agent_id}' not found",
                code="secret_not_found",
                details={"agent_id": agent_id, "secret_name": name},
            ) from None
        await self._audit(caller, "read", "ok", agent_id, name, owner)
        async with self.db.session() as s:
            meta = await s.get(SecretMetaRow, (agent_id, name))
        return value, meta

    async def list(self, caller: Principal, agent_id: str) -> builtins.list[str]:
        """Names of an agent's secrets (never values)."""
        owner = await self._authorize(caller, agent_id, "list", None, scope="read")
        names = await self.backend.list_names(agent_id)
        await self._audit(caller, "list", "ok", agent_id, None, owner)
        return names

    async def metadata(self, agent_id: str) -> dict[str, SecretMetaRow]:
        async with self.db.session() as s:
            rows = (await s.execute(select(SecretMetaRow).where(SecretMetaRow.agent_id == agent_id))).scalars()
            return {r.name: r for r in rows}

    async def delete(self, caller: Principal, agent_id: str, name: str) -> bool:
        """Delete a secret; NotFound when it did not exist."""
        owner = await self._authorize(caller, agent_id, "delete", name, scope="write")
        existed = await self.backend.delete(agent_id, name)
        async with self.db.transaction() as s:
            meta = await s.get(SecretMetaRow, (agent_id, name))
            if meta is not None:
                await s.delete(meta)
        await self._audit(caller, "delete", "ok" if existed else "not_found", agent_id, name, owner)
        if not existed:
            raise NotFound(
                f"secret '{name}' of agent '{agent_id}' not found",
                code="secret_not_found",
                details={"agent_id": agent_id, "secret_name": name},
            )
        return True

    async def audit(
        self,
        caller: Principal,
        *,
        agent_id: str | None = None,
        action: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[builtins.list[SecretAuditRow], str | None]:
        """Audit events, newest first. Without ``secrets`` scope: only events of the caller's namespaces."""
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", details={"limit": limit})
        stmt = select(SecretAuditRow)
        if not caller.has("secrets"):
            stmt = stmt.where((SecretAuditRow.namespace_owner == caller.owner) | (SecretAuditRow.actor == caller.owner))
        if agent_id:
            stmt = stmt.where(SecretAuditRow.agent_id == agent_id)
        if action:
            stmt = stmt.where(SecretAuditRow.action == action)
        if cursor:
            stmt = stmt.where(SecretAuditRow.id < cursor)
        async with self.db.session() as s:
            rows = list((await s.execute(stmt.order_by(SecretAuditRow.id.desc()).limit(limit + 1))).scalars())
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, rows[-1].id if more and rows else None

    async def count(self) -> int:
        """Number of secrets Portside stored (metadata rows)."""
        async with self.db.session() as s:
            return int((await s.execute(select(func.count()).select_from(SecretMetaRow))).scalar_one())


def cipher_of(ctx_services: dict[str, Any], secret_key: str | None, data_dir: Path) -> SecretCipher:
    """The app's shared cipher (one per app), created from the settings on first use."""
    cipher = ctx_services.get("secret_cipher")
    if not isinstance(cipher, SecretCipher):
        cipher = SecretCipher.from_settings(secret_key, data_dir)
        ctx_services["secret_cipher"] = cipher
    return cipher
