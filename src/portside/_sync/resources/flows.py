# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""``client.flows``: flow definitions (DAGs of nodes), versions and starting executions."""

from __future__ import annotations

import builtins
from typing import Any

from portside._sync._http import HTTP, new_idempotency_key
from portside._sync.resources.executions import Executions
from portside.types.flows import Execution, Flow, FlowVersion


class Flows:
    """Save, read, version, validate and run flows."""

    def __init__(self, http: HTTP) -> None:
        self._http = http
        self._executions = Executions(http)

    def create(self, definition: dict[str, Any]) -> Flow:
        """Save a new flow (409 if its ``flow_id`` exists; 400 listing every problem if invalid)."""
        data = self._http.json("POST", "/v1/flows", json=definition, idempotency_key=new_idempotency_key())
        return Flow.model_validate(data)

    def upsert(self, definition: dict[str, Any]) -> Flow:
        """Create the flow or save a new revision of it (no new revision when unchanged)."""
        flow_id = definition["flow_id"]
        return Flow.model_validate(self._http.json("PUT", f"/v1/flows/{flow_id}", json=definition))

    def validate(self, definition: dict[str, Any]) -> dict[str, Any]:
        """Check a definition without saving it (raises ValidationError with ``details["errors"]``)."""
        data: dict[str, Any] = self._http.json("POST", "/v1/flows/validate", json=definition)
        return data

    def get(self, flow_id: str, *, version: int | None = None) -> Flow:
        data = self._http.json("GET", f"/v1/flows/{flow_id}", params={"version": version})
        return Flow.model_validate(data)

    def list(self) -> builtins.list[Flow]:
        data = self._http.json("GET", "/v1/flows")
        return [Flow.model_validate(f) for f in data["items"]]

    def versions(self, flow_id: str) -> builtins.list[FlowVersion]:
        data = self._http.json("GET", f"/v1/flows/{flow_id}/versions")
        return [FlowVersion.model_validate(v) for v in data["items"]]

    def delete(self, flow_id: str) -> None:
        self._http.json("DELETE", f"/v1/flows/{flow_id}")

    def execute(
        self,
        flow_id: str,
        input: dict[str, Any] | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        version: int | None = None,
        timeout_seconds: float | None = None,
    ) -> Execution:
        """Start an execution; returns at once (status ``pending``)."""
        return self._executions.create(
            flow_id, input, metadata=metadata, version=version, timeout_seconds=timeout_seconds
        )

    def run(
        self,
        flow_id: str,
        input: dict[str, Any] | None = None,
        *,
        timeout: float | None = 300.0,
        **kwargs: Any,
    ) -> Execution:
        """Start an execution and wait for it (long-poll); check ``.status`` of the result."""
        execution = self.execute(flow_id, input, **kwargs)
        return self._executions.wait(execution.execution_id, timeout=timeout)
