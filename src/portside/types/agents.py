"""Agent registry models."""

from __future__ import annotations

from typing import Any

from portside.types.common import Model


class Agent(Model):
    """A registered agent: an HTTP endpoint (``backing == "http"``) or a worker capability (``"worker"``)."""

    agent_id: str
    name: str
    description: str = ""
    endpoint: str | None = None
    capability: str | None = None
    capabilities: list[str] = []
    type: str = "processor"
    backing: str = "none"
    configuration: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    is_active: bool = True
    created_by: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def id(self) -> str:
        return self.agent_id
