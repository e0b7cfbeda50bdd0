"""Response models of ``/v1/inputs`` (HTTP inputs): the SDK's :mod:`portside.types.inputs` models, shared."""

from __future__ import annotations

from pydantic import Field

from portside.server.api.wire import Deleted, WireModel
from portside.types.inputs import HttpInput, InputRequest, TriggerResult

__all__ = ["HttpInputList", "HttpInputOut", "InputDeleted", "InputMetrics", "InputRequestPage", "TriggerResult"]


class HttpInputOut(HttpInput):
    """An input with its owner and the Symbiont ``HttpInputConfig`` listener fields it keeps."""

    owner: str
    bind_address: str = "0.0.0.0"
    port: int = 8081
    path: str = "/webhook"


class HttpInputList(WireModel):
    items: list[HttpInputOut]


class InputDeleted(Deleted):
    id: str


class InputRequestPage(WireModel):
    items: list[InputRequest]
    total: int


class OutcomeFigures(WireModel):
    count: int
    average_ms: float


class InputMetrics(WireModel):
    """Live counters (this replica) and audited figures per outcome (every replica)."""

    input_id: str
    server_id: str = Field(description="Same as input_id (Symbiont's name).")
    status: str
    uptime_seconds: int | None = None
    requests_processed: int
    last_request_at: str | None = None
    last_error: str | None = None
    requests_received: int
    completed: int
    accepted: int
    failed: int
    rejected: dict[str, int]
    rejected_total: int
    active_connections: int
    average_processing_time_ms: float
    audited: dict[str, OutcomeFigures]
    rate_limit_per_minute: float
    concurrency: int
