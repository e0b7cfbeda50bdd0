# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""``client.reviews``: tool review sessions, automated analysis, decisions and SchemaPin signing."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator
from typing import Any

from portside._sync._http import HTTP
from portside.types.reviews import Analysis, ReviewPage, ReviewSession, SignedTool, SigningKey

TERMINAL = frozenset({"approved", "rejected", "signed"})


class Reviews:
    """Submit tools for review, read analyses, decide (``review`` scope) and sign."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def submit(
        self,
        tool: dict[str, Any],
        *,
        source: str | None = None,
        submitted_by: str | None = None,
        priority: str = "normal",
    ) -> ReviewSession:
        """Submit a tool definition (and optionally its Python source); the analysis starts at once."""
        body = {"tool": tool, "source": source, "submitted_by": submitted_by, "priority": priority}
        return ReviewSession.model_validate(self._http.json("POST", "/v1/reviews", json=body))

    def get(self, review_id: str) -> ReviewSession:
        return ReviewSession.model_validate(self._http.json("GET", f"/v1/reviews/{review_id}"))

    def list(
        self, *, status: str | None = None, author: str | None = None, page: int = 1, limit: int = 20
    ) -> ReviewPage:
        params = {"status": status, "author": author, "page": page, "limit": limit}
        return ReviewPage.model_validate(self._http.json("GET", "/v1/reviews", params=params))

    def iter_all(
        self, *, status: str | None = None, author: str | None = None, page_size: int = 100
    ) -> Iterator[ReviewSession]:
        """Every matching review session, fetched page by page."""
        page_no = 1
        while True:
            page = self.list(status=status, author=author, page=page_no, limit=page_size)
            for item in page.items:
                yield item
            if not page.has_next or not page.items:
                return
            page_no += 1

    def wait(self, review_id: str, *, until: str = "analysis", timeout: float = 60.0) -> ReviewSession:
        """Wait for the analysis (``until="analysis"``) or a final status (``until="decision"``)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            data = self._http.json(
                "GET",
                f"/v1/reviews/{review_id}/wait",
                params={"until": until, "timeout": min(remaining, 30.0)},
                timeout=min(remaining, 30.0) + 10.0,
            )
            session = ReviewSession.model_validate(data)
            done = session.status in TERMINAL if until == "decision" else session.state.analysis_id is not None
            if done or session.status in TERMINAL or remaining <= 0:
                return session

    def analysis(self, review_id: str) -> Analysis:
        """The analysis of a review session."""
        return Analysis.model_validate(self._http.json("GET", f"/v1/reviews/{review_id}/analysis"))

    def get_analysis(self, analysis_id: str) -> Analysis:
        return Analysis.model_validate(self._http.json("GET", f"/v1/analyses/{analysis_id}"))

    def claim(self, review_id: str, *, reviewer_id: str | None = None) -> ReviewSession:
        body = {"reviewer_id": reviewer_id}
        return ReviewSession.model_validate(self._http.json("POST", f"/v1/reviews/{review_id}/claim", json=body))

    def decide(
        self, review_id: str, decision: str, *, reason: str | None = None, reviewer_id: str | None = None
    ) -> ReviewSession:
        """Approve or reject (``decision`` = ``approve`` / ``reject``); needs the ``review`` scope."""
        body = {"decision": decision, "reason": reason, "reviewer_id": reviewer_id}
        data = self._http.json("POST", f"/v1/reviews/{review_id}/decision", json=body)
        return ReviewSession.model_validate(data)

    def approve(self, review_id: str, *, reason: str | None = None) -> ReviewSession:
        return self.decide(review_id, "approve", reason=reason)

    def reject(self, review_id: str, *, reason: str | None = None) -> ReviewSession:
        return self.decide(review_id, "reject", reason=reason)

    def sign(self, review_id: str, *, signing_key_id: str | None = None) -> SignedTool:
        """Sign an approved tool (409 otherwise)."""
        body = {"signing_key_id": signing_key_id}
        return SignedTool.model_validate(self._http.json("POST", f"/v1/reviews/{review_id}/sign", json=body))

    def signed(self, review_id: str) -> SignedTool:
        return SignedTool.model_validate(self._http.json("GET", f"/v1/reviews/{review_id}/signed"))

    def well_known(self) -> dict[str, Any]:
        """The server's ``/.well-known/schemapin.json``."""
        data: dict[str, Any] = self._http.json("GET", "/.well-known/schemapin.json")
        return data

    def signing_keys(self) -> builtins.list[SigningKey]:
        data = self._http.json("GET", "/v1/signing-keys")
        return [SigningKey.model_validate(k) for k in data["items"]]

    def rotate_key(self) -> SigningKey:
        """New active signing key (admin)."""
        return SigningKey.model_validate(self._http.json("POST", "/v1/signing-keys/rotate"))

    def revoke_key(self, fingerprint: str, *, reason: str = "key_compromise") -> SigningKey:
        """Revoke a signing key (admin)."""
        data = self._http.json("POST", f"/v1/signing-keys/{fingerprint}/revoke", json={"reason": reason})
        return SigningKey.model_validate(data)
