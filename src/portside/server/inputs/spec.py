"""The configuration of an HTTP input, as callers send it and as it is stored.

The stored ``config`` follows Symbiont's ``HttpInputConfig`` (``agent_id`` there is our ``target``)
plus Portside's own knobs: rate limit, how long to wait for the result, and the HMAC secret (kept
apart, encrypted).

A *target* is ``flow:<flow_id>``, ``agent:<agent_id>`` or a bare id (a Symbiont agent when one
has that id, else a flow).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TARGET_PATTERN = r"^(?:(?:flow|agent):)?[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}$"
_TARGET = re.compile(TARGET_PATTERN)
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_NONE: dict[str, Any] = {"enum": [None, ""]}


def _only(field: str, schema: dict[str, Any]) -> dict[str, Any]:
    others = {name: _NONE for name in ("target", "flow_id", "agent_id") if name != field}
    return {"required": [field], "properties": {field: schema, **others}}


#: ``InputSpec``'s "exactly one of target, flow_id or agent_id" (a model validator), for the document.
ONE_TARGET: dict[str, Any] = {
    "anyOf": [
        _only("target", {"type": "string", "pattern": TARGET_PATTERN}),
        _only("flow_id", {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,194}$"}),
        _only("agent_id", {"type": "string", "pattern": TARGET_PATTERN}),
    ]
}
ConditionType = Literal["path_prefix", "header_equals", "json_field_equals"]


def check_target(value: str) -> str:
    if not _TARGET.match(value):
        raise ValueError("target must be 'flow:<id>', 'agent:<id>' or an id (letters, digits, '_', '.', ':', '-')")
    return value


def split_target(target: str) -> tuple[str, str]:
    """(``flow`` | ``agent`` | ``auto``, id)."""
    kind, sep, rest = target.partition(":")
    if sep and kind in {"flow", "agent"}:
        return kind, rest
    return "auto", target


class RoutingRule(BaseModel):
    """Send matching requests to another target. Rules are tried in order; the first match wins."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "if": {"properties": {"condition_type": {"const": "path_prefix"}}},
            "else": {
                "required": ["condition_target"],
                "properties": {"condition_target": {"type": "string", "minLength": 1}},
            },
        },
    )

    condition_type: ConditionType
    condition_value: str = Field(max_length=1000)
    condition_target: str | None = Field(
        default=None, max_length=200, description="Header name, or dotted JSON field path."
    )
    agent_id: str = Field(
        max_length=300, description="The target of matching requests.", json_schema_extra={"pattern": TARGET_PATTERN}
    )

    @field_validator("agent_id")
    @classmethod
    def _target(cls, value: str) -> str:
        return check_target(value)

    @model_validator(mode="after")
    def _needs_target(self) -> RoutingRule:
        if self.condition_type != "path_prefix" and not self.condition_target:
            raise ValueError(f"a {self.condition_type} rule needs condition_target (header name or field path)")
        return self


class ResponseControl(BaseModel):
    """How the webhook answers."""

    model_config = ConfigDict(extra="ignore")

    default_status: int = Field(default=200, ge=200, le=299)
    agent_output_to_json: bool = True
    error_status: int = Field(default=500, ge=400, le=599)
    echo_input_on_error: bool = False


class InputConfig(BaseModel):
    """What is stored in ``http_inputs.config`` (validated again on every load)."""

    model_config = ConfigDict(extra="ignore")

    bind_address: str = Field(default="0.0.0.0", max_length=200)
    port: int = Field(default=8081, ge=0, le=65535)
    path: str = Field(default="/webhook", max_length=500)
    max_body_bytes: int = Field(default=65536, ge=1, le=10 * 1024 * 1024)
    concurrency: int = Field(default=10, ge=1, le=10_000)
    routing_rules: list[RoutingRule] = Field(default_factory=list, max_length=100)
    response_control: ResponseControl = Field(default_factory=ResponseControl)
    forward_headers: list[str] = Field(
        default_factory=list,
        max_length=100,
        json_schema_extra={"items": {"type": "string", "pattern": _HEADER.pattern}},
    )
    cors_enabled: bool = False
    audit_enabled: bool = True
    jwt_public_key_path: str | None = Field(default=None, max_length=2000)
    rate_limit_per_minute: float = Field(default=0.0, ge=0, le=1_000_000)
    rate_limit_burst: int = Field(default=0, ge=0, le=1_000_000)
    wait_seconds: float = Field(default=0.0, ge=0, le=300)

    @field_validator("forward_headers")
    @classmethod
    def _headers(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _HEADER.match(name):
                raise ValueError(f"invalid header name {name[:50]!r}")
        return [h.lower() for h in value]

    @field_validator("routing_rules", mode="before")
    @classmethod
    def _no_rules(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("response_control", mode="before")
    @classmethod
    def _default_control(cls, value: Any) -> Any:
        return ResponseControl() if value is None else value


_SETTINGS = tuple(InputConfig.model_fields)


class InputSpec(InputConfig):
    """Create an input: a target (``target``, or ``flow_id`` / ``agent_id``) and its settings."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=ONE_TARGET)

    name: str = Field(default="", max_length=200)
    target: str | None = Field(default=None, max_length=300)
    flow_id: str | None = Field(default=None, max_length=200)
    agent_id: str | None = Field(default=None, max_length=200)
    secret: str | None = Field(
        default=None, min_length=8, max_length=1000, description="HMAC-SHA256 key; requests must be signed."
    )
    auth_header: str | None = Field(
        default=None, max_length=2000, description="Exact 'Authorization' header value callers must send."
    )
    enabled: bool = Field(default=True, description="Start in 'running' (true) or 'stopped'.")

    @model_validator(mode="after")
    def _one_target(self) -> InputSpec:
        given = [t for t in (self.target, self.flow_id and f"flow:{self.flow_id}", self.agent_id) if t]
        if len(given) != 1:
            raise ValueError("give exactly one of target, flow_id or agent_id")
        self.target = check_target(given[0])
        return self

    def settings(self) -> InputConfig:
        return InputConfig.model_validate(self.model_dump(include=set(_SETTINGS)))


class InputPatch(BaseModel):
    """Change an input; unset fields stay. ``secret``/``auth_header`` set to null remove them."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    target: str | None = Field(default=None, max_length=300)
    flow_id: str | None = Field(default=None, max_length=200)
    agent_id: str | None = Field(default=None, max_length=200)
    secret: str | None = Field(default=None, min_length=8, max_length=1000)
    auth_header: str | None = Field(default=None, max_length=2000)
    bind_address: str | None = Field(default=None, max_length=200)
    port: int | None = Field(default=None, ge=0, le=65535)
    path: str | None = Field(default=None, max_length=500)
    max_body_bytes: int | None = Field(default=None, ge=1, le=10 * 1024 * 1024)
    concurrency: int | None = Field(default=None, ge=1, le=10_000)
    routing_rules: list[RoutingRule] | None = Field(default=None, max_length=100)
    response_control: ResponseControl | None = None
    forward_headers: list[str] | None = Field(default=None, max_length=100)
    cors_enabled: bool | None = None
    audit_enabled: bool | None = None
    jwt_public_key_path: str | None = Field(default=None, max_length=2000)
    rate_limit_per_minute: float | None = Field(default=None, ge=0, le=1_000_000)
    rate_limit_burst: int | None = Field(default=None, ge=0, le=1_000_000)
    wait_seconds: float | None = Field(default=None, ge=0, le=300)

    def new_target(self) -> str | None:
        given = [t for t in (self.target, self.flow_id and f"flow:{self.flow_id}", self.agent_id) if t]
        if len(given) > 1:
            raise ValueError("give at most one of target, flow_id or agent_id")
        return check_target(given[0]) if given else None

    def setting_changes(self) -> dict[str, Any]:
        """Changed settings (only those explicitly sent)."""
        sent = self.model_dump(exclude_unset=True, include=set(_SETTINGS))
        return {k: v for k, v in sent.items() if v is not None or k == "jwt_public_key_path"}


class TriggerRequest(BaseModel):
    """Fire an input as an authenticated caller (no signature needed): a test or a manual run."""

    model_config = ConfigDict(extra="ignore")

    payload: Any = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    path: str = Field(default="", max_length=2000)
