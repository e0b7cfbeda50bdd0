"""Flow engine configuration from ``PORTSIDE_FLOWS_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FlowSettings(BaseSettings):
    """Knobs of the flow engine. Defaults suit one server on one machine."""

    model_config = SettingsConfigDict(env_prefix="PORTSIDE_FLOWS_", extra="ignore")

    dir: Path | None = Field(default=None, description="Directory of flow YAML files; default <data_dir>/flows.")
    engine: bool = Field(default=True, description="Run the engine in this process (false: API only).")
    lease_seconds: float = Field(default=15.0, gt=0.5, description="How long an engine owns an execution unrenewed.")
    poll_seconds: float = Field(default=0.5, gt=0, description="How often to look for work from other replicas.")
    max_running: int = Field(default=256, ge=1, description="Executions driven at once by one engine.")
    max_output_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="Largest node output stored.")
    node_name: str | None = Field(default=None, description="This replica's name in leases (default: hostname).")
