"""API key models."""

from __future__ import annotations

from portside.types.common import Model


class ApiKey(Model):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    owner: str
    created_at: str
    revoked: bool
    last_used_at: str | None = None


class WhoAmI(Model):
    """The calling key's identity and scopes (``GET /v1/keys/me``)."""

    key_id: str
    name: str
    owner: str
    scopes: list[str]


class CreatedApiKey(ApiKey):
    """A new key: ``key`` is the secret, shown only in this response."""

    key: str
