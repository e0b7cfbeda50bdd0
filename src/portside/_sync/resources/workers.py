# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""``client.workers``: registered workers, their leases, and capability definitions."""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

from portside._sync._http import HTTP
from portside.types.tasks import CapabilityDefinition, WorkerInfo


class Workers:
    """Inspect workers; define capability schemas."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def list(self) -> builtins.list[WorkerInfo]:
        """Workers with their status, capabilities and active leases."""
        data = self._http.json("GET", "/v1/workers")
        return [WorkerInfo.model_validate(w) for w in data["items"]]

    def get(self, worker_id: str) -> WorkerInfo:
        return WorkerInfo.model_validate(self._http.json("GET", f"/v1/workers/{quote(worker_id, safe='')}"))

    def define_capability(
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
        data = self._http.json("PUT", f"/v1/capabilities/{capability}", json=body)
        return CapabilityDefinition.model_validate(data)

    def capabilities(self) -> builtins.list[CapabilityDefinition]:
        data = self._http.json("GET", "/v1/capabilities")
        return [CapabilityDefinition.model_validate(c) for c in data["items"]]
