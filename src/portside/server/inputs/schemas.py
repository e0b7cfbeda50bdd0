"""Response models of ``/v1/inputs`` (HTTP inputs): the SDK's :mod:`portside.types.inputs` models, shared."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from portside.server.api.wire import Deleted, WireModel
from portside.types.inputs import HttpInput, InputRequest, TriggerResult

__all__ = [
    "HttpInputList",
    "HttpInputOut",
    "InputDeleted",
    "InputMetrics",
    "InputRequestPage",
    "SymbiontInputConfig",
    "SymbiontInputDeleted",
    "SymbiontInputServer",
    "SymbiontTriggerResult",
    "TriggerResult",
]


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


# ---------------------------------------------------------------- Symbiont door (``/api/v1/http-input``)


class SymbiontRoutingRule(WireModel):
    """``symbiont.AgentRoutingRule``."""

    condition_type: str
    condition_value: str
    condition_target: str | None = None
    agent_id: str


class SymbiontResponseControl(WireModel):
    """``symbiont.HttpResponseControlConfig``."""

    default_status: int = 200
    agent_output_to_json: bool = True
    error_status: int = 500
    echo_input_on_error: bool = False


class SymbiontInputConfig(WireModel):
    """``symbiont.HttpInputConfig`` as stored: ``auth_header`` is masked; ``bind_address:port`` is not bound."""

    bind_address: str = "0.0.0.0"
    port: int = 8081
    path: str = "/webhook"
    agent_id: str
    auth_header: str | None = None
    jwt_public_key_path: str | None = None
    max_body_bytes: int = 65536
    concurrency: int = 10
    routing_rules: list[SymbiontRoutingRule] | None = None
    response_control: SymbiontResponseControl | None = None
    forward_headers: list[str] = []
    cors_enabled: bool = False
    audit_enabled: bool = True


class SymbiontInputServer(WireModel):
    """``symbiont.HttpInputServerInfo`` plus ``webhook_path`` (where the input is served)."""

    server_id: str
    config: SymbiontInputConfig
    status: str
    uptime_seconds: int | None = None
    requests_processed: int = 0
    active_connections: int = 0
    last_error: str | None = None
    webhook_path: str


class SymbiontInputDeleted(Deleted):
    server_id: str


class SymbiontTriggerResult(WireModel):
    """``symbiont.WebhookTriggerResponse``: what the webhook answered (``agent_id`` is the target it ran)."""

    status: str
    response_code: int
    response_body: dict[str, Any]
    processing_time_ms: float
    agent_id: str
