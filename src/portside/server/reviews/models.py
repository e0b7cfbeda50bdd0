"""Finding and analysis result shapes (a superset of the Symbiont SDK's review models).

``Finding`` carries every field of ``symbiont.SecurityFinding`` (finding_id, severity, category,
title, description, confidence, recommendation) plus ``rule``, ``location`` and ``evidence``.
``AnalysisResult.to_sdk()`` gives exactly the ``symbiont.AnalysisResults`` shape.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field


class Severity(str, Enum):
    """``symbiont.FindingSeverity``."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


class Category(str, Enum):
    """``symbiont.FindingCategory``."""

    SCHEMA_INJECTION = "schema_injection"
    PRIVILEGE_ESCALATION = "privilege_escalation"
    DATA_EXPOSURE = "data_exposure"
    MALICIOUS_CODE = "malicious_code"
    RESOURCE_ABUSE = "resource_abuse"


Recommendation = Literal["approve", "needs_review", "reject"]


class Finding(BaseModel):
    """One thing the analyzer objects to, with where and what."""

    finding_id: str
    rule: str = Field(description="Stable rule id, e.g. 'poisoning.override_instructions'.")
    severity: Severity
    category: Category
    title: str
    description: str
    confidence: float = Field(ge=0.0, le=1.0)
    location: str = Field(description="'name', 'description', 'schema.properties.path', 'source:12' ...")
    evidence: str = Field(description="The offending text (secrets redacted).")
    recommendation: str | None = None

    @property
    def line(self) -> int | None:
        """Source line number for ``source:N`` locations."""
        if self.location.startswith("source:"):
            head = self.location[len("source:") :].split(":", 1)[0]
            return int(head) if head.isdigit() else None
        return None

    def to_sdk(self) -> dict[str, Any]:
        """``symbiont.SecurityFinding`` fields only."""
        return {
            "finding_id": self.finding_id,
            "severity": self.severity.value,
            "category": self.category.value,
            "title": self.title,
            "description": self.description,
            "confidence": self.confidence,
            "recommendation": self.recommendation,
        }


def make_finding(
    rule: str,
    severity: Severity,
    category: Category,
    title: str,
    description: str,
    confidence: float,
    location: str,
    evidence: str,
    recommendation: str | None = None,
) -> Finding:
    """Build a finding whose id is a stable hash of (rule, location, evidence)."""
    digest = hashlib.sha256(f"{rule}\x00{location}\x00{evidence}".encode()).hexdigest()[:20]
    return Finding(
        finding_id=f"fnd_{digest}",
        rule=rule,
        severity=severity,
        category=category,
        title=title,
        description=description,
        confidence=round(max(0.0, min(1.0, confidence)), 2),
        location=location,
        evidence=evidence,
        recommendation=recommendation,
    )


class AnalysisResult(BaseModel):
    """Findings, a 0-100 risk score and a verdict for one tool (and optionally its source)."""

    analysis_id: str
    tool_name: str
    schema_hash: str
    risk_score: int = Field(ge=0, le=100)
    risk_level: Severity
    recommendation: Recommendation
    findings: list[Finding]
    recommendations: list[str] = []
    completed_at: datetime
    scanners: list[str] = Field(default_factory=list, description="Which scanners ran, e.g. ['poisoning', 'bandit'].")

    def to_sdk(self) -> dict[str, Any]:
        """Exactly the ``symbiont.AnalysisResults`` shape (JSON-ready)."""
        return {
            "analysis_id": self.analysis_id,
            "risk_score": self.risk_score,
            "findings": [f.to_sdk() for f in self.findings],
            "recommendations": list(self.recommendations),
            "completed_at": self.completed_at.isoformat().replace("+00:00", "Z"),
        }
