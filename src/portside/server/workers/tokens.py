"""Short-lived worker bearer tokens (JWT, HS256), as sent by holokai neurons.

A token is minted from an API key holding the ``worker`` scope (``POST /api/v1/auth/token``). It
carries the key's identity and may be bound to one worker id; every replica verifies it with the
signing secret kept in the store (or derived from ``PORTSIDE_SECRET_KEY``). Encoding and
verification are PyJWT's; only ``HS256`` is accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portside.server.auth import Principal
from portside.server.clock import utcnow
from portside.server.errors import Unauthenticated
from portside.server.logs import note_key_id
from portside.server.store import Database
from portside.server.store.core_models import ApiKeyRow
from portside.server.workers.models import WorkerTokenKeyRow

ISSUER = "portside"
_KEY_ID = "default"
ALGORITHM = "HS256"
# ``iat`` is informational: a replica whose clock runs a little ahead must not mint "future" tokens
_DECODE_OPTIONS: Any = {"require": ["iss", "sub", "own", "exp"], "verify_iat": False}


@dataclass(frozen=True)
class WorkerCaller:
    """Who is calling a worker endpoint, and the worker id their token is bound to (if any)."""

    principal: Principal
    bound_worker_id: str | None = None
    via_token: bool = False


class TokenSigner:
    """Mints and verifies worker tokens."""

    def __init__(self, db: Database, secret_key: str | None = None) -> None:
        self._db = db
        self._secret: bytes | None = None
        self._active: dict[str, tuple[float, bool]] = {}
        if secret_key:
            self._secret = hmac.new(secret_key.encode(), b"portside-worker-tokens", hashlib.sha256).digest()

    async def load(self) -> None:
        """Load (or create once, shared by replicas) the signing secret."""
        if self._secret is not None:
            return
        for _ in range(3):
            async with self._db.session() as s:
                row = await s.get(WorkerTokenKeyRow, _KEY_ID)
                if row is not None:
                    self._secret = bytes.fromhex(row.secret)
                    return
            try:
                async with self._db.transaction() as s:
                    s.add(WorkerTokenKeyRow(id=_KEY_ID, secret=secrets.token_hex(32), created_at=utcnow()))
            except IntegrityError:
                continue
        async with self._db.session() as s:  # pragma: no cover - lost every race
            found = (await s.execute(select(WorkerTokenKeyRow).where(WorkerTokenKeyRow.id == _KEY_ID))).scalar_one()
            self._secret = bytes.fromhex(found.secret)

    async def ensure_key_active(self, key_id: str) -> None:
        """401 if the API key a token was minted from has been revoked (checked every few seconds)."""
        now = time.monotonic()
        hit = self._active.get(key_id)
        if hit is None or hit[0] <= now:
            async with self._db.session() as s:
                row = await s.get(ApiKeyRow, key_id)
            active = row is not None and row.revoked_at is None
            if len(self._active) > 10_000:
                self._active.clear()
            self._active[key_id] = (now + 5.0, active)
            hit = self._active[key_id]
        if not hit[1]:
            raise Unauthenticated("the API key behind this token was revoked")

    def _key(self) -> bytes:
        if self._secret is None:  # pragma: no cover - load() runs at start-up
            raise RuntimeError("token signer not loaded")
        return self._secret

    def mint(self, principal: Principal, *, worker_id: str | None, ttl_s: int) -> tuple[str, int]:
        """A token for ``principal``; returns (token, expiry as a unix time)."""
        now = int(time.time())
        exp = now + ttl_s
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": principal.key_id,
            "own": principal.owner,
            "nam": principal.name,
            "scp": sorted(principal.scopes),
            "iat": now,
            "exp": exp,
            "jti": secrets.token_hex(8),
        }
        if worker_id:
            claims["nid"] = worker_id
        return jwt.encode(claims, self._key(), algorithm=ALGORITHM), exp

    def verify(self, token: str) -> WorkerCaller:
        """The caller behind a token, or 401 (bad signature, expired, malformed)."""
        try:
            claims = jwt.decode(token, self._key(), algorithms=[ALGORITHM], issuer=ISSUER, options=_DECODE_OPTIONS)
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("bearer token expired", code="token_expired") from exc
        except jwt.DecodeError as exc:  # not three base64url JSON parts, or a bad signature
            raise Unauthenticated(
                "invalid bearer token" if isinstance(exc, jwt.InvalidSignatureError) else "malformed bearer token"
            ) from exc
        except jwt.PyJWTError as exc:  # wrong algorithm or issuer, a claim missing or mistyped
            raise Unauthenticated("invalid bearer token") from exc
        principal = Principal(
            key_id=str(claims["sub"]),
            name=str(claims.get("nam", "")),
            owner=str(claims["own"]),
            scopes=frozenset(str(s) for s in claims.get("scp", [])),
        )
        nid = claims.get("nid")
        note_key_id(principal.key_id)
        return WorkerCaller(principal=principal, bound_worker_id=str(nid) if nid else None, via_token=True)
