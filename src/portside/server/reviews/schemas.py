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


# ---------------------------------------------------------------- Symbiont door (``/api/v1/tool-review``)


class ReviewSubmitted(WireModel):
    """Symbiont's ``ReviewSessionResponse``."""

    review_id: str
    status: str
    submitted_at: str
    estimated_completion: str | None = None


class ReviewPagination(WireModel):
    page: int
    limit: int
    total: int
    has_next: bool


class ReviewSessionList(WireModel):
    """Symbiont's ``ReviewSessionList``."""

    sessions: list[ReviewSessionOut]
    pagination: ReviewPagination


class SigningOut(WireModel):
    """Symbiont's ``SigningResponse`` plus the key fingerprint and review id."""

    signature: str
    signed_at: str | None = None
    signer_id: str | None = None
    signature_algorithm: str | None = None
    key_fingerprint: str | None = None
    review_id: str
