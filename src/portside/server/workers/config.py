"""Tunables of the workers area, from ``PORTSIDE_WORKERS_*`` environment variables.

The service keeps its config object in ``service.config``; tests may change it after
``create_app`` and before the app starts (e.g. short lease TTLs for expiry tests).
"""

from __future__ import annotations

import uuid

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROTOCOL_VERSION = "1.0.0"
SUPPORTED_MAJOR = 1


class WorkersConfig(BaseSettings):
    """Lease, retry, polling and token settings."""

    model_config = SettingsConfigDict(env_prefix="PORTSIDE_WORKERS_", extra="ignore")

    lease_ttl_s: float = Field(default=30.0, gt=0, description="Default lease TTL without heartbeats.")
    heartbeat_interval_s: float = Field(default=10.0, gt=0, description="Heartbeat period advised to workers.")
    reaper_interval_s: float = Field(default=1.0, gt=0, description="How often expired leases are reclaimed.")
    poll_interval_s: float = Field(default=1.0, gt=0, description="Store polling period (other replicas' work).")
    default_max_attempts: int = Field(default=3, ge=1, le=100)
    retry_backoff_s: float = Field(default=1.0, ge=0, description="First retry delay after a retryable nack.")
    retry_backoff_max_s: float = Field(default=60.0, ge=0)
    sse_ping_s: float = Field(default=15.0, gt=0, description="Keep-alive comment period on event streams.")
    token_ttl_s: int = Field(default=900, ge=30, le=86_400, description="Lifetime of issued worker tokens.")
    max_input_bytes: int = Field(default=1_048_576, ge=1024)
    max_wait_s: float = Field(default=60.0, gt=0, description="Longest single long-poll wait.")
    max_batch: int = Field(default=500, ge=1, description="Largest group-committed write batch.")
    replica_id: str = Field(default_factory=lambda: "rep_" + uuid.uuid4().hex[:12])

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1-based) becomes available."""
        if self.retry_backoff_s <= 0:
            return 0.0
        return float(min(self.retry_backoff_max_s, self.retry_backoff_s * (2 ** max(0, attempt - 1))))
