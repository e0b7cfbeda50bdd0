"""Symbiont tool review and signing: ``/api/v1/tool-review/...`` on the native review service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from portside.server.api.params import MAX_PAGE
from portside.server.api.wire import WireRoute
from portside.server.auth import Principal
from portside.server.context import AppContext, get_ctx
from portside.server.ratelimit import rate_limited
from portside.server.reviews import views
from portside.server.reviews.schemas import (
    AnalysisOut,
    ReviewSessionList,
    ReviewSessionOut,
    ReviewSubmitted,
    SignedTool,
    SigningOut,
)
from portside.server.reviews.service import DECISION_DOC, TOOL_DOC, ReviewService

router = APIRouter(tags=["symbiont"], route_class=WireRoute)
Reader = Depends(rate_limited("read"))
Writer = Depends(rate_limited("write"))
Reviewer = Depends(rate_limited("review"))


def svc(ctx: AppContext = Depends(get_ctx)) -> ReviewService:
    return ctx.service("reviews", ReviewService)


class ReviewSessionCreate(BaseModel):
    """``symbiont.ReviewSessionCreate`` (the tool's schema arrives as ``tool_schema``)."""

    model_config = ConfigDict(extra="ignore")

    tool: dict[str, Any] = Field(json_schema_extra=TOOL_DOC)
    submitted_by: str | None = Field(default=None, max_length=200)
    priority: str | None = "normal"


class HumanReviewDecision(BaseModel):
    model_config = ConfigDict(extra="ignore")

    decision: str = Field(json_schema_extra=DECISION_DOC)
    comments: str | None = Field(default=None, max_length=10_000)
    reviewer_id: str | None = Field(default=None, max_length=200)


class SigningRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    review_id: str
    signing_key_id: str | None = Field(default=None, max_length=200)


@router.post("/tool-review/sessions", response_model=ReviewSubmitted)
async def submit_tool_for_review(
    body: ReviewSessionCreate, s: ReviewService = Depends(svc), caller: Principal = Writer
) -> Any:
    row = await s.submit(caller, body.tool, submitted_by=body.submitted_by, priority=body.priority or "normal")
    return views.submitted(row)


@router.get("/tool-review/sessions", response_model=ReviewSessionList)
async def list_review_sessions(
    page: int = Query(1, ge=1, le=MAX_PAGE),
    limit: int = Query(20, ge=1, le=200),
    status: str | None = None,
    author: str | None = None,
    s: ReviewService = Depends(svc),
    caller: Principal = Reader,
) -> Any:
    rows, total = await s.list(caller, status=status, author=author, page=page, limit=limit)
    return {
        "sessions": [views.session(r) for r in rows],
        "pagination": {"page": page, "limit": limit, "total": total, "has_next": page * limit < total},
    }


@router.get("/tool-review/sessions/{review_id}", response_model=ReviewSessionOut)
async def get_review_session(review_id: str, s: ReviewService = Depends(svc), caller: Principal = Reader) -> Any:
    return views.session(await s.get(caller, review_id))


@router.post("/tool-review/sessions/{review_id}/decisions", response_model=ReviewSessionOut)
async def submit_human_review_decision(
    review_id: str, body: HumanReviewDecision, s: ReviewService = Depends(svc), caller: Principal = Reviewer
) -> Any:
    row = await s.decide(caller, review_id, body.decision, reviewer_id=body.reviewer_id, reason=body.comments)
    return views.session(row)


@router.get("/tool-review/analysis/{analysis_id}", response_model=AnalysisOut)
async def get_analysis_results(analysis_id: str, s: ReviewService = Depends(svc), caller: Principal = Reader) -> Any:
    return views.analysis(await s.analysis(caller, analysis_id))


@router.post("/tool-review/sign", response_model=SigningOut)
async def sign_approved_tool(
    body: SigningRequest, s: ReviewService = Depends(svc), caller: Principal = Reviewer
) -> Any:
    return views.signing(await s.sign(caller, body.review_id, body.signing_key_id))


@router.get("/tool-review/signed/{review_id}", response_model=SignedTool)
async def get_signed_tool(review_id: str, s: ReviewService = Depends(svc), caller: Principal = Reader) -> Any:
    return views.signed_tool(await s.signed(caller, review_id))
