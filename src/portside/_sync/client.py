# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""``Client``: the async entry point of the SDK."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from portside._sync._http import HTTP
from portside._sync.resources.admin import Admin
from portside._sync.resources.agent_deployments import AgentDeployments
from portside._sync.resources.agents import Agents
from portside._sync.resources.cargos import Cargos
from portside._sync.resources.executions import Executions
from portside._sync.resources.flows import Flows
from portside._sync.resources.inputs import Inputs
from portside._sync.resources.keys import Keys
from portside._sync.resources.knowledge import Knowledge
from portside._sync.resources.mcp_hub import McpHub
from portside._sync.resources.reviews import Reviews
from portside._sync.resources.sandboxes import Sandboxes
from portside._sync.resources.secrets import Secrets
from portside._sync.resources.skills import Skills
from portside._sync.resources.tasks import Tasks
from portside._sync.resources.workers import Workers
from portside._config import ClientConfig
from portside.types.common import Health


class Client:
    """Talks to a Portside server.

    Arguments fall back to ``PORTSIDE_URL``, ``PORTSIDE_API_KEY``, ``PORTSIDE_TIMEOUT`` and
    ``PORTSIDE_MAX_RETRIES``. Use it as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = ClientConfig.resolve(base_url, api_key, timeout, max_retries)
        self._http = HTTP(self.config, transport=transport)
        self.keys = Keys(self._http)
        self.skills = Skills(self._http)
        self.sandboxes = Sandboxes(self._http)
        self.cargos = Cargos(self._http)
        self.tasks = Tasks(self._http)
        self.workers = Workers(self._http)
        self.reviews = Reviews(self._http)
        self.secrets = Secrets(self._http)
        self.agent_deployments = AgentDeployments(self._http)
        self.knowledge = Knowledge(self._http)
        self.agents = Agents(self._http)
        self.flows = Flows(self._http)
        self.executions = Executions(self._http)
        self.mcp = McpHub(self._http)
        self.inputs = Inputs(self._http)
        self.admin = Admin(self._http)

    def health(self) -> Health:
        """Liveness of the server."""
        return Health.model_validate(self._http.json("GET", "/v1/health"))

    def ready(self) -> dict[str, Any]:
        """Readiness of the server (store reachable, migrations current)."""
        data: dict[str, Any] = self._http.json("GET", "/v1/ready")
        return data

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
