"""``client.agents``: the agent registry (HTTP endpoints or worker capabilities)."""

from __future__ import annotations

import builtins
from typing import Any

from portside._async._http import AsyncHTTP, new_idempotency_key
from portside.types.agents import Agent


class AsyncAgents:
    """Register, list, read, update and delete agents."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def create(
        self,
        *,
        name: str,
        id: str | None = None,
        endpoint: str | None = None,
        capability: str | None = None,
        capabilities: builtins.list[str] | None = None,
        type: str = "processor",
        description: str = "",
        configuration: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        is_active: bool = True,
    ) -> Agent:
        """Register an agent. Portside POSTs ``{"input", "config", ...}`` to ``<endpoint>/execute``;
        with ``capability`` the agent is served by workers instead."""
        body = {
            "id": id,
            "name": name,
            "endpoint": endpoint,
            "capability": capability,
            "capabilities": capabilities or [],
            "type": type,
            "description": description,
            "configuration": configuration or {},
            "metadata": metadata or {},
            "is_active": is_active,
        }
        data = await self._http.json("POST", "/v1/agents", json=body, idempotency_key=new_idempotency_key())
        return Agent.model_validate(data)

    async def get(self, agent_id: str) -> Agent:
        return Agent.model_validate(await self._http.json("GET", f"/v1/agents/{agent_id}"))

    async def list(
        self, *, type: str | None = None, capability: str | None = None, active: bool | None = None
    ) -> builtins.list[Agent]:
        params = {"type": type, "capability": capability, "active": None if active is None else str(active).lower()}
        data = await self._http.json("GET", "/v1/agents", params=params)
        return [Agent.model_validate(a) for a in data["items"]]

    async def update(self, agent_id: str, **fields: Any) -> Agent:
        """Change fields (``name``, ``endpoint``, ``capability``, ``is_active``, ...)."""
        return Agent.model_validate(await self._http.json("PATCH", f"/v1/agents/{agent_id}", json=fields))

    async def delete(self, agent_id: str) -> Agent:
        return Agent.model_validate(await self._http.json("DELETE", f"/v1/agents/{agent_id}"))
