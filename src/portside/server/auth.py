"""API keys: generation, hashing, scopes and request authentication."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy import func, select

from portside.server.clock import utcnow
from portside.server.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from portside.server.ids import new_id
from portside.server.logs import note_key_id
from portside.server.store import Database
from portside.server.store.core_models import ApiKeyRow

log = logging.getLogger("portside.auth")

#: Scopes a key may hold. ``admin`` implies every other scope.
SCOPES: frozenset[str] = frozenset({"admin", "read", "write", "review", "secrets", "worker"})
DEFAULT_SCOPES: tuple[str, ...] = ("read", "write")
#: The scope every key-management action needs, on every door (native ``/v1/keys`` and dialects).
MANAGE_SCOPE = "admin"
ADMIN_KEY_FILE = "admin_key"
_CACHE_SECONDS = 2.0


def generate_key() -> str:
    """A new random key in the ``sk_...`` form every client SDK accepts."""
    return "sk_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """SHA-256 of a key; keys are 256-bit random, so a fast hash is the right tool."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, owner and scopes."""

    key_id: str
    name: str
    owner: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    def has(self, scope: str) -> bool:
        """True when the key holds ``scope`` (admin holds all)."""
        return "admin" in self.scopes or scope in self.scopes

    def effective_scopes(self) -> frozenset[str]:
        """Every scope this key can exercise (``admin`` expands to all of :data:`SCOPES`)."""
        return SCOPES if "admin" in self.scopes else self.scopes & SCOPES

    def require(self, scope: str) -> None:
        """Raise 403 unless the key holds ``scope``."""
        if not self.has(scope):
            raise Forbidden(f"this API key lacks the '{scope}' scope", details={"required_scope": scope})


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: never the secret itself."""

    id: str
    name: str
    prefix: str
    scopes: list[str]
    owner: str
    created_at: str
    revoked: bool
    last_used_at: str | None


@dataclass(frozen=True)
class AdminKeyStatus:
    """How start-up found the admin key: ``configured`` (``PORTSIDE_API_KEY``), ``generated`` now
    (``plaintext`` and the file it was saved to) or ``existing`` (``path`` if a saved one is there)."""

    source: Literal["configured", "generated", "existing"]
    plaintext: str | None = None
    path: Path | None = None


def _valid_scopes(scopes: list[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(scopes)) if scopes else list(DEFAULT_SCOPES)
    unknown = sorted(set(chosen) - SCOPES)
    if unknown:
        raise InvalidInput(
            f"unknown scope(s): {', '.join(unknown)}", details={"allowed": sorted(SCOPES), "unknown": unknown}
        )
    return chosen


def _info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=list(row.scopes),
        owner=row.owner,
        created_at=row.created_at.isoformat(),
        revoked=row.revoked_at is not None,
        last_used_at=row.last_used_at.isoformat() if row.last_used_at else None,
    )


def check_grant(issuer: Principal, scopes: Iterable[str]) -> None:
    """The one scope rule of every door: nobody hands out a scope it does not hold itself.

    Applies to API keys (``/v1/keys``, AI Spine's ``/api/v1/user/keys/*``) and to anything minted
    from a key (the neuron door's worker tokens). 403 ``scope_escalation`` otherwise.
    """
    beyond = sorted(set(scopes) - issuer.effective_scopes())
    if beyond:
        raise Forbidden(
            f"a key cannot grant scopes it does not hold: {', '.join(beyond)}",
            code="scope_escalation",
            details={"requested_beyond": beyond, "caller_scopes": sorted(issuer.scopes)},
        )


def check_manage(issuer: Principal) -> None:
    """Creating, rotating, listing and revoking keys needs :data:`MANAGE_SCOPE` (403 otherwise)."""
    issuer.require(MANAGE_SCOPE)


class KeyService:
    """Creates, lists, revokes and checks API keys.

    ``create`` and ``revoke`` take the ``issuer`` (the calling principal) and apply the same rule
    whichever door they are called from: :func:`check_grant` then :func:`check_manage`. Only the
    server itself (first-start admin key) creates keys without an issuer, through :meth:`bootstrap`.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def create(
        self, issuer: Principal, name: str, scopes: list[str] | None = None, owner: str = "admin"
    ) -> tuple[KeyInfo, str]:
        """Create a key on behalf of ``issuer``; returns its info and the plaintext (shown once).

        403 ``scope_escalation`` when ``scopes`` go beyond the issuer's own, 403 ``forbidden``
        when the issuer lacks :data:`MANAGE_SCOPE`.
        """
        chosen = _valid_scopes(scopes)
        check_grant(issuer, chosen)
        check_manage(issuer)
        return await self._insert(name, chosen, owner, None)

    async def bootstrap(self, name: str, scopes: list[str], *, key: str | None = None) -> tuple[KeyInfo, str]:
        """Create a key as the server itself (the start-up admin key): no issuer to check."""
        return await self._insert(name, _valid_scopes(scopes), "admin", key)

    async def _insert(self, name: str, chosen: list[str], owner: str, key: str | None) -> tuple[KeyInfo, str]:
        plaintext = key or generate_key()
        if not plaintext.startswith("sk_") or len(plaintext) < 20:
            raise InvalidInput("API keys must look like 'sk_' followed by at least 17 characters")
        row = ApiKeyRow(
            id=new_id("key"),
            name=name,
            key_hash=hash_key(plaintext),
            prefix=plaintext[:7],
            scopes=chosen,
            owner=owner,
        )
        async with self.db.transaction() as s:
            s.add(row)
        return _info(row), plaintext

    async def list(self, issuer: Principal, *, owner: str | None = None) -> list[KeyInfo]:
        """Keys, oldest first: every key, or ``owner``'s. Any key may list its own owner's keys;
        everything else needs :data:`MANAGE_SCOPE`."""
        if owner is None or owner != issuer.owner:
            check_manage(issuer)
        stmt = select(ApiKeyRow).order_by(ApiKeyRow.created_at)
        if owner is not None:
            stmt = stmt.where(ApiKeyRow.owner == owner)
        async with self.db.session() as s:
            rows = (await s.execute(stmt)).scalars().all()
        return [_info(r) for r in rows]

    async def revoke(self, issuer: Principal, key_id: str) -> KeyInfo:
        """Revoke a key (needs :data:`MANAGE_SCOPE`, like creating one)."""
        check_manage(issuer)
        async with self.db.transaction() as s:
            row = await s.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"API key {key_id} not found")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
        self._cache.clear()
        return _info(row)

    async def count_active(self) -> int:
        async with self.db.session() as s:
            stmt = select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))
            return int((await s.execute(stmt)).scalar_one())

    async def authenticate(self, plaintext: str | None) -> Principal:
        """The principal behind a key, or 401."""
        if not plaintext:
            raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
        digest = hash_key(plaintext)
        hit = self._cache.get(digest)
        now = time.monotonic()
        if hit and hit[0] > now:
            note_key_id(hit[1].key_id)
            return hit[1]
        async with self.db.session() as s:
            row = (await s.execute(select(ApiKeyRow).where(ApiKeyRow.key_hash == digest))).scalar_one_or_none()
        if row is None or row.revoked_at is not None:
            self._cache.pop(digest, None)
            raise Unauthenticated("invalid or revoked API key")
        principal = Principal(key_id=row.id, name=row.name, owner=row.owner, scopes=frozenset(row.scopes))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + _CACHE_SECONDS, principal)
        note_key_id(principal.key_id)
        return principal

    async def ensure_admin_key(self, data_dir: Path, configured: str | None) -> AdminKeyStatus:
        """Make sure an admin key exists, and say where it came from.

        With ``configured`` (``PORTSIDE_API_KEY``) that key is registered as admin and is never
        written anywhere. Otherwise, on first start, a key is generated and saved to
        ``<data_dir>/admin_key`` with mode 0600; only then is the plaintext returned.
        """
        saved = data_dir / ADMIN_KEY_FILE
        if configured:
            async with self.db.session() as s:
                stmt = select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(configured))
                exists = (await s.execute(stmt)).scalar_one_or_none()
            if exists is None:
                await self.bootstrap("admin (PORTSIDE_API_KEY)", ["admin"], key=configured)
            return AdminKeyStatus(source="configured")
        if await self.count_active() > 0:
            return AdminKeyStatus(source="existing", path=saved.resolve() if saved.is_file() else None)
        _, plaintext = await self.bootstrap("admin (first start)", ["admin"])
        saved.touch(mode=0o600, exist_ok=True)
        saved.chmod(0o600)
        saved.write_text(plaintext + "\n")
        log.info("created the first admin API key; saved to %s", saved.resolve())
        return AdminKeyStatus(source="generated", plaintext=plaintext, path=saved.resolve())
