"""Server configuration from ``PORTSIDE_*`` environment variables and CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the server can be told. Defaults serve one user on one machine."""

    model_config = SettingsConfigDict(env_prefix="PORTSIDE_", extra="ignore")

    data_dir: Path = Field(default=Path(".portside"), description="Where the embedded store and files live.")
    host: str = "127.0.0.1"
    port: int = 8321
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="Comma-separated proxy addresses whose X-Forwarded-For is trusted (e.g. your load balancer). "
        "Unset: forwarded headers are ignored, so a client cannot pick the address its limits are charged to.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default is SQLite in the data dir. "
        "Use postgresql+asyncpg://... to scale out.",
    )
    api_key: str | None = Field(default=None, description="Admin key to use instead of a generated one.")
    secret_key: str | None = Field(default=None, description="Key for data encrypted at rest (base64 or hex).")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object a line (for collectors); text: for a terminal."
    )
    log_json: bool | None = Field(default=None, description="Older switch: true = json, false = text (wins if set).")
    auth_enabled: bool = True
    sandbox_driver: str = Field(default="bwrap", description="bwrap (isolated) or process (UNSAFE, no isolation).")
    sandbox_bwrap: str = Field(default="bwrap", description="The bubblewrap binary (a name on PATH or a path).")
    sandbox_warm_pool: int = Field(default=2, description="Pre-started sandboxes kept per default profile.")
    sandbox_default_cargo_mb: int = Field(default=1024, description="Size limit of a sandbox's own cargo.")
    sandbox_disk_limits: bool = Field(
        default=True,
        description="Give each cargo a size-limited filesystem (loop-mounted ext4 image; needs root and loop "
        "devices, else a warning and plain directories).",
    )
    sandbox_max_file_mb: int = Field(default=256, description="Largest file accepted by write/upload.")
    max_body_mb: int = Field(
        default=16, ge=1, description="Largest request body (JSON and everything but uploads), checked before auth."
    )
    max_upload_mb: int | None = Field(
        default=None, ge=1, description="Largest upload body (multipart files); default sandbox_max_file_mb + 1."
    )
    sandbox_reaper_interval: float = Field(default=5.0, description="Seconds between TTL/idle sweeps.")
    sandbox_idle_timeout: int = Field(default=1800, description="Seconds of inactivity before a session stops.")
    browser_executable: str | None = Field(default=None, description="Chromium binary; default: the system one.")
    browser_egress_allow: str = Field(
        default="",
        description="Comma-separated hosts the browser-python profile's browser may reach (e.g. example.com, "
        "*.example.org, 10.0.0.5:8080) through a filtering proxy; empty = no network.",
    )
    skill_canary_share: float = Field(default=0.1, ge=0.0, le=1.0, description="Share of runs sent to canary.")
    instance_name: str = "portside"

    @property
    def resolved_database_url(self) -> str:
        """The database URL actually used."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'portside.db').resolve()}"

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_mb * 1024 * 1024

    @property
    def max_upload_bytes(self) -> int:
        mb = self.max_upload_mb if self.max_upload_mb is not None else self.sandbox_max_file_mb + 1
        return max(mb * 1024 * 1024, self.max_body_bytes)

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def ensure_data_dir(self) -> Path:
        """Create the data directory (0700) and return its absolute path."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.data_dir.chmod(0o700)
        except OSError:  # pragma: no cover - foreign filesystem
            pass
        return self.data_dir.resolve()
