"""API keys: generation, hashing, scopes and request authentication."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from portside.server.clock import utcnow
from portside.server.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from portside.server.ids import new_id
from portside.server.store import Database
from portside.server.store.core_models import ApiKeyRow

log = logging.getLogger("portside.auth")

#: Scopes a key may hold. ``admin`` implies every other scope.
SCOPES: frozenset[str] = frozenset({"admin", "read", "write", "review", "secrets", "worker"})
DEFAULT_SCOPES: tuple[str, ...] = ("read", "write")
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


class KeyService:
    """Creates, lists, revokes and checks API keys."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def create(
        self, name: str, scopes: list[str] | None = None, owner: str = "admin", *, key: str | None = None
    ) -> tuple[KeyInfo, str]:
        """Create a key; returns its info and the plaintext, which is never shown again."""
        chosen = list(scopes) if scopes else list(DEFAULT_SCOPES)
        unknown = sorted(set(chosen) - SCOPES)
        if unknown:
            raise InvalidInput(
                f"unknown scope(s): {', '.join(unknown)}", details={"allowed": sorted(SCOPES), "unknown": unknown}
            )
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

    async def list(self) -> list[KeyInfo]:
        async with self.db.session() as s:
            rows = (await s.execute(select(ApiKeyRow).order_by(ApiKeyRow.created_at))).scalars().all()
        return [_info(r) for r in rows]

    async def revoke(self, key_id: str) -> KeyInfo:
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
        return principal

    async def ensure_admin_key(self, data_dir: Path, configured: str | None) -> str | None:
        """Make sure an admin key exists.

        With ``configured`` (``PORTSIDE_API_KEY``) that key is registered as admin. Otherwise, on
        first start, a key is generated and saved to ``<data_dir>/admin_key`` with mode 0600.
        Returns the plaintext when one was created or configured, else None.
        """
        if configured:
            async with self.db.session() as s:
                stmt = select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(configured))
                exists = (await s.execute(stmt)).scalar_one_or_none()
            if exists is None:
                await self.create("admin (PORTSIDE_API_KEY)", ["admin"], key=configured)
            return configured
        if await self.count_active() > 0:
            return None
        _, plaintext = await self.create("admin (first start)", ["admin"])
        path = data_dir / ADMIN_KEY_FILE
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(plaintext + "\n")
        log.info("created the first admin API key; saved to %s", path)
        return plaintext
