"""``client.flows``: flow definitions (DAGs of nodes), versions and starting executions."""

from __future__ import annotations

import builtins
from typing import Any

from portside._async._http import AsyncHTTP, new_idempotency_key
from portside._async.resources.executions import AsyncExecutions
from portside.types.flows import Execution, Flow, FlowVersion


class AsyncFlows:
    """Save, read, version, validate and run flows."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http
        self._executions = AsyncExecutions(http)

    async def create(self, definition: dict[str, Any]) -> Flow:
        """Save a new flow (409 if its ``flow_id`` exists; 400 listing every problem if invalid)."""
        data = await self._http.json("POST", "/v1/flows", json=definition, idempotency_key=new_idempotency_key())
        return Flow.model_validate(data)

    async def upsert(self, definition: dict[str, Any]) -> Flow:
        """Create the flow or save a new revision of it (no new revision when unchanged)."""
        flow_id = definition["flow_id"]
        return Flow.model_validate(await self._http.json("PUT", f"/v1/flows/{flow_id}", json=definition))

    async def validate(self, definition: dict[str, Any]) -> dict[str, Any]:
        """Check a definition without saving it (raises ValidationError with ``details["errors"]``)."""
        data: dict[str, Any] = await self._http.json("POST", "/v1/flows/validate", json=definition)
        return data

    async def get(self, flow_id: str, *, version: int | None = None) -> Flow:
        data = await self._http.json("GET", f"/v1/flows/{flow_id}", params={"version": version})
        return Flow.model_validate(data)

    async def list(self) -> builtins.list[Flow]:
        data = await self._http.json("GET", "/v1/flows")
        return [Flow.model_validate(f) for f in data["items"]]

    async def versions(self, flow_id: str) -> builtins.list[FlowVersion]:
        data = await self._http.json("GET", f"/v1/flows/{flow_id}/versions")
        return [FlowVersion.model_validate(v) for v in data["items"]]

    async def delete(self, flow_id: str) -> None:
        await self._http.json("DELETE", f"/v1/flows/{flow_id}")

    async def execute(
        self,
        flow_id: str,
        input: dict[str, Any] | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        version: int | None = None,
        timeout_seconds: float | None = None,
    ) -> Execution:
        """Start an execution; returns at once (status ``pending``)."""
        return await self._executions.create(
            flow_id, input, metadata=metadata, version=version, timeout_seconds=timeout_seconds
        )

    async def run(
        self,
        flow_id: str,
        input: dict[str, Any] | None = None,
        *,
        timeout: float | None = 300.0,
        **kwargs: Any,
    ) -> Execution:
        """Start an execution and wait for it (long-poll); check ``.status`` of the result."""
        execution = await self.execute(flow_id, input, **kwargs)
        return await self._executions.wait(execution.execution_id, timeout=timeout)
