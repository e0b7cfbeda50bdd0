"""MCP server settings from ``PORTSIDE_MCP_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MCPSettings(BaseSettings):
    """Limits of the MCP tools (shared by the HTTP and stdio transports)."""

    model_config = SettingsConfigDict(env_prefix="PORTSIDE_MCP_", extra="ignore")

    max_output_chars: int = Field(
        default=20_000, ge=200, description="Longest string field in a tool result before it is truncated."
    )
    sandbox_cache_size: int = Field(
        default=64, ge=1, description="Session sandboxes kept (LRU); the least recently used is released beyond it."
    )
    sandbox_ttl: int = Field(default=3600, ge=0, description="TTL in seconds of sandboxes created for a session.")
    sandbox_profile: str = "python-default"
    eviction: Literal["delete", "stop"] = Field(
        default="delete", description="What happens to an evicted session sandbox: deleted, or only stopped."
    )
