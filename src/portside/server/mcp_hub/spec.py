"""What a caller sends to register or change an MCP server."""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from portside.server.mcp_hub.connection import STDIO, STREAMABLE_HTTP

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_NAME = re.compile(NAME_PATTERN)
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HEADER_KEY = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s]"
_ALIASES = {"http": STREAMABLE_HTTP, "streamable-http": STREAMABLE_HTTP, "streamable_http": STREAMABLE_HTTP}

TransportName = Literal["stdio", "streamable_http", "sse"]


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError("name must be 1-100 characters of letters, digits, '.', '_' or '-' (starting alphanumeric)")
    return name


def _check_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parsed = urlparse(value)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise ValueError("url must be an absolute http:// or https:// URL")
    return value


def _check_env(env: dict[str, str] | None) -> dict[str, str] | None:
    if env is None:
        return None
    for key, value in env.items():
        if not _ENV_KEY.match(key) or "\x00" in value:
            raise ValueError(f"invalid environment variable {key[:50]!r}")
    return env


def _check_headers(headers: dict[str, str] | None) -> dict[str, str] | None:
    if headers is None:
        return None
    for key, value in headers.items():
        if not _HEADER_KEY.match(key) or any(c in value for c in "\r\n\x00"):
            raise ValueError(f"invalid header {key[:50]!r}")
    return headers


def _transport(value: Any) -> Any:
    if isinstance(value, str):
        return _ALIASES.get(value.lower(), value.lower())
    return value


def _split_command(data: Any) -> Any:
    """``command`` may be a list (the Symbiont shape): its head is the program, the rest leads ``args``."""
    if isinstance(data, dict) and isinstance(data.get("command"), list):
        parts = [str(p) for p in data["command"]]
        data = {**data, "command": parts[0] if parts else None, "args": parts[1:] + list(data.get("args") or [])}
    return data


#: ``ServerSpec``'s shape rule (``_complete``): stdio takes a command and no url; streamable_http
#: and sse take an http(s) url and no command. For the document; the validator enforces it.
_EMPTY: dict[str, Any] = {"enum": [None, ""]}
SERVER_SHAPE: dict[str, Any] = {
    "anyOf": [
        {
            "required": ["command"],
            "properties": {
                "transport": {"enum": ["stdio", None]},
                "command": {"type": "string", "minLength": 1},
                "url": _EMPTY,
            },
        },
        {
            "required": ["url"],
            "properties": {
                "transport": {"enum": ["streamable_http", "sse", None]},
                "url": {"type": "string", "pattern": URL_PATTERN},
                "command": _EMPTY,
            },
        },
    ]
}
ENV_DOC: dict[str, Any] = {
    "propertyNames": {"pattern": _ENV_KEY.pattern},
    "additionalProperties": {"type": "string", "pattern": "^[^\\x00]*$"},
}
HEADERS_DOC: dict[str, Any] = {
    "propertyNames": {"pattern": _HEADER_KEY.pattern},
    "additionalProperties": {"type": "string", "pattern": "^[^\\r\\n\\x00]*$"},
}


class ServerSpec(BaseModel):
    """Register a server: ``command`` (+ ``args``, ``env``, ``cwd``) for stdio, or ``url`` (+ ``headers``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=SERVER_SHAPE)

    name: str = Field(min_length=1, max_length=100, json_schema_extra={"pattern": NAME_PATTERN})
    transport: TransportName | None = Field(
        default=None, description="stdio | streamable_http | sse; default: stdio with a command, else streamable_http."
    )
    command: str | None = Field(default=None, max_length=2000)
    args: list[str] = Field(default_factory=list, max_length=200)
    env: dict[str, str] = Field(default_factory=dict, max_length=200, json_schema_extra=ENV_DOC)
    cwd: str | None = Field(default=None, max_length=2000)
    url: str | None = Field(default=None, max_length=2000)
    headers: dict[str, str] = Field(default_factory=dict, max_length=100, json_schema_extra=HEADERS_DOC)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    description: str = Field(default="", max_length=5000)
    connect: bool = Field(default=False, description="Connect right after registering.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_url(value)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_env(value) or {}

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_headers(value) or {}

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        data = _split_command(data)
        if isinstance(data, dict) and "transport" in data:
            data = {**data, "transport": _transport(data["transport"])}
        return data

    @model_validator(mode="after")
    def _complete(self) -> ServerSpec:
        if self.transport is None:
            self.transport = "stdio" if self.command else "streamable_http"
        if self.transport == STDIO:
            if not self.command:
                raise ValueError("a stdio server needs a command")
            if self.url:
                raise ValueError("a stdio server takes a command, not a url")
        else:
            if not self.url:
                raise ValueError(f"a {self.transport} server needs a url")
            if self.command:
                raise ValueError(f"a {self.transport} server takes a url, not a command")
        return self


class ServerPatch(BaseModel):
    """Change a server; unset fields stay. ``env``/``headers`` replace the whole mapping."""

    model_config = ConfigDict(extra="forbid")

    transport: TransportName | None = None
    command: str | None = Field(default=None, max_length=2000)
    args: list[str] | None = Field(default=None, max_length=200)
    env: dict[str, str] | None = Field(default=None, max_length=200, json_schema_extra=ENV_DOC)
    cwd: str | None = Field(default=None, max_length=2000)
    url: str | None = Field(default=None, max_length=2000, json_schema_extra={"pattern": URL_PATTERN})
    headers: dict[str, str] | None = Field(default=None, max_length=100, json_schema_extra=HEADERS_DOC)
    timeout_seconds: float | None = Field(default=None, gt=0, le=600)
    description: str | None = Field(default=None, max_length=5000)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_url(value)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _check_env(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _check_headers(value)

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        data = _split_command(data)
        if isinstance(data, dict) and "transport" in data:
            data = {**data, "transport": _transport(data["transport"])}
        return data


class ToolCall(BaseModel):
    """Arguments of a tool call through the hub."""

    model_config = ConfigDict(extra="forbid")

    arguments: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
