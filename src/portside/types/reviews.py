"""Tool review, analysis and signing models."""

from __future__ import annotations

from typing import Any

from portside.types.common import Model


class Finding(Model):
    """One security finding of the automated analysis."""

    finding_id: str
    severity: str
    category: str
    title: str
    description: str
    confidence: float
    recommendation: str | None = None
    rule: str | None = None
    location: str | None = None
    line: int | None = None
    evidence: str | None = None


class ReviewState(Model):
    type: str
    analysis_id: str | None = None
    analysis_completed_at: str | None = None
    critical_findings: list[Finding] = []
    human_reviewer_id: str | None = None
    review_started_at: str | None = None


class ReviewSession(Model):
    """A review session: the tool, its status, analysis summary, decision and signature facts."""

    review_id: str
    tool: dict[str, Any]
    status: str
    state: ReviewState
    submitted_by: str
    submitted_at: str
    estimated_completion: str | None = None
    priority: str = "normal"
    risk_score: int | None = None
    recommendation: str | None = None
    decision: str | None = None
    decision_reason: str | None = None
    reviewer_id: str | None = None
    decided_at: str | None = None
    signed_at: str | None = None
    key_fingerprint: str | None = None
    error: str | None = None


class ReviewPage(Model):
    items: list[ReviewSession]
    total: int
    page: int
    limit: int
    has_next: bool


class Analysis(Model):
    """The automated analysis of a tool: a 0-100 risk score and findings."""

    analysis_id: str
    review_id: str | None = None
    risk_score: int
    risk_level: str | None = None
    recommendation: str | None = None
    findings: list[Finding]
    recommendations: list[str] = []
    scanners: list[str] = []
    completed_at: str


class SignedTool(Model):
    """A tool signed by the server (SchemaPin); verify offline with ``portside tool verify``."""

    tool: dict[str, Any]
    signature: str
    signed_at: str
    signer_id: str
    signature_algorithm: str
    review_id: str
    key_fingerprint: str | None = None
    public_key_pem: str | None = None
    key_status: str | None = None
    schema_hash: str | None = None


class SigningKey(Model):
    fingerprint: str
    public_key_pem: str
    created_at: str
    status: str
    revoked_at: str | None = None
    revocation_reason: str | None = None
