"""``AsyncClient``: the async entry point of the SDK."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from portside._async._http import AsyncHTTP
from portside._async.resources.admin import AsyncAdmin
from portside._async.resources.agent_deployments import AsyncAgentDeployments
from portside._async.resources.agents import AsyncAgents
from portside._async.resources.cargos import AsyncCargos
from portside._async.resources.executions import AsyncExecutions
from portside._async.resources.flows import AsyncFlows
from portside._async.resources.inputs import AsyncInputs
from portside._async.resources.keys import AsyncKeys
from portside._async.resources.knowledge import AsyncKnowledge
from portside._async.resources.mcp_hub import AsyncMcpHub
from portside._async.resources.reviews import AsyncReviews
from portside._async.resources.sandboxes import AsyncSandboxes
from portside._async.resources.secrets import AsyncSecrets
from portside._async.resources.skills import AsyncSkills
from portside._async.resources.tasks import AsyncTasks
from portside._async.resources.workers import AsyncWorkers
from portside._config import ClientConfig
from portside.types.common import Health


class AsyncClient:
    """Talks to a Portside server.

    Arguments fall back to ``PORTSIDE_URL``, ``PORTSIDE_API_KEY``, ``PORTSIDE_TIMEOUT`` and
    ``PORTSIDE_MAX_RETRIES``. Use it as a context manager, or call ``aclose()``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = ClientConfig.resolve(base_url, api_key, timeout, max_retries)
        self._http = AsyncHTTP(self.config, transport=transport)
        self.keys = AsyncKeys(self._http)
        self.skills = AsyncSkills(self._http)
        self.sandboxes = AsyncSandboxes(self._http)
        self.cargos = AsyncCargos(self._http)
        self.tasks = AsyncTasks(self._http)
        self.workers = AsyncWorkers(self._http)
        self.reviews = AsyncReviews(self._http)
        self.secrets = AsyncSecrets(self._http)
        self.agent_deployments = AsyncAgentDeployments(self._http)
        self.knowledge = AsyncKnowledge(self._http)
        self.agents = AsyncAgents(self._http)
        self.flows = AsyncFlows(self._http)
        self.executions = AsyncExecutions(self._http)
        self.mcp = AsyncMcpHub(self._http)
        self.inputs = AsyncInputs(self._http)
        self.admin = AsyncAdmin(self._http)

    async def health(self) -> Health:
        """Liveness of the server."""
        return Health.model_validate(await self._http.json("GET", "/v1/health"))

    async def ready(self) -> dict[str, Any]:
        """Readiness of the server (store reachable, migrations current)."""
        data: dict[str, Any] = await self._http.json("GET", "/v1/ready")
        return data

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
