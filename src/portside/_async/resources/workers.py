"""``client.workers``: registered workers, their leases, and capability definitions."""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

from portside._async._http import AsyncHTTP
from portside.types.tasks import CapabilityDefinition, WorkerInfo


class AsyncWorkers:
    """Inspect workers; define capability schemas."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def list(self) -> builtins.list[WorkerInfo]:
        """Workers with their status, capabilities and active leases."""
        data = await self._http.json("GET", "/v1/workers")
        return [WorkerInfo.model_validate(w) for w in data["items"]]

    async def get(self, worker_id: str) -> WorkerInfo:
        return WorkerInfo.model_validate(await self._http.json("GET", f"/v1/workers/{quote(worker_id, safe='')}"))

    async def define_capability(
        self,
        capability: str,
        *,
        input_schema: Any = None,
        output_schema: Any = None,
        description: str = "",
        max_attempts: int | None = None,
        lease_ttl_ms: int | None = None,
    ) -> CapabilityDefinition:
        """Create or replace a capability type's JSON Schemas and retry policy."""
        body = {
            "input_schema": input_schema,
            "output_schema": output_schema,
            "description": description,
            "max_attempts": max_attempts,
            "lease_ttl_ms": lease_ttl_ms,
        }
        data = await self._http.json("PUT", f"/v1/capabilities/{capability}", json=body)
        return CapabilityDefinition.model_validate(data)

    async def capabilities(self) -> builtins.list[CapabilityDefinition]:
        data = await self._http.json("GET", "/v1/capabilities")
        return [CapabilityDefinition.model_validate(c) for c in data["items"]]
