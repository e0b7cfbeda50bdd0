"""Response models of tool review and signing (``/v1/reviews``, ``/v1/analyses``, ``/v1/signing-keys``,
``/.well-known/schemapin*.json``).

The shapes built by :mod:`portside.server.reviews.views` are the SDK's :mod:`portside.types.reviews`
models plus a few wire-only keys, declared here as subclasses.
"""

from __future__ import annotations

from pydantic import Field

from portside.server.api.wire import WireModel
from portside.types.reviews import Analysis, ReviewSession, SignedTool, SigningKey

__all__ = [
    "AnalysisOut",
    "ReviewPageOut",
    "ReviewSessionOut",
    "RevocationDocument",
    "SchemaPinDocument",
    "SignedTool",
    "SigningKeyList",
    "SigningKeyOut",
]


class ReviewSessionOut(ReviewSession):
    has_source: bool = Field(default=False, description="Whether the tool's source was submitted too.")


class ReviewPageOut(WireModel):
    items: list[ReviewSessionOut]
    total: int
    page: int
    limit: int
    has_next: bool


class AnalysisOut(Analysis):
    schema_hash: str | None = None


SigningKeyOut = SigningKey


class SigningKeyList(WireModel):
    items: list[SigningKey]
    total: int


class SchemaPinDocument(WireModel):
    """SchemaPin discovery document (``schemapin.utils.create_well_known_response``)."""

    schema_version: str
    developer_name: str
    public_key_pem: str
    revoked_keys: list[str]
    contact: str | None = None
    revocation_endpoint: str | None = None


class RevokedKey(WireModel):
    fingerprint: str
    revoked_at: str | None = None
    reason: str | None = None


class RevocationDocument(WireModel):
    """SchemaPin 1.2 revocation document (``schemapin.revocation.RevocationDocument``)."""

    schemapin_version: str
    domain: str
    updated_at: str
    revoked_keys: list[RevokedKey]
