"""``client.inputs``: HTTP inputs — webhook endpoints (``/hooks/{id}``) that start a flow or an agent."""

from __future__ import annotations

import builtins
from typing import Any

from portside._async._http import AsyncHTTP
from portside.types.inputs import HttpInput, InputRequest, TriggerResult

_BASE = "/v1/inputs"


class AsyncInputs:
    """Create, change, start, stop, delete and trigger webhook endpoints; read their metrics and audit log."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def create(
        self,
        *,
        flow_id: str | None = None,
        agent_id: str | None = None,
        target: str | None = None,
        secret: str | None = None,
        **settings: Any,
    ) -> HttpInput:
        """Create an input for a flow (``flow_id``), an agent (``agent_id``) or a ``target`` string.

        ``secret`` makes callers sign bodies (``X-Signature-256: sha256=<hex HMAC-SHA256>``). Other settings:
        ``name``, ``rate_limit_per_minute``, ``rate_limit_burst``, ``wait_seconds``, ``max_body_bytes``,
        ``concurrency``, ``routing_rules``, ``response_control``, ``forward_headers``, ``cors_enabled``,
        ``audit_enabled``, ``auth_header``, ``enabled``.
        """
        body = {"flow_id": flow_id, "agent_id": agent_id, "target": target, "secret": secret, **settings}
        body = {k: v for k, v in body.items() if v is not None}
        return HttpInput.model_validate(await self._http.json("POST", _BASE, json=body))

    async def list(self) -> builtins.list[HttpInput]:
        data = await self._http.json("GET", _BASE)
        return [HttpInput.model_validate(i) for i in data["items"]]

    async def get(self, input_id: str) -> HttpInput:
        return HttpInput.model_validate(await self._http.json("GET", f"{_BASE}/{input_id}"))

    async def update(self, input_id: str, **changes: Any) -> HttpInput:
        """Change settings; ``secret=None`` removes the signature requirement."""
        return HttpInput.model_validate(await self._http.json("PATCH", f"{_BASE}/{input_id}", json=changes))

    async def start(self, input_id: str) -> HttpInput:
        return HttpInput.model_validate(await self._http.json("POST", f"{_BASE}/{input_id}/start"))

    async def stop(self, input_id: str) -> HttpInput:
        return HttpInput.model_validate(await self._http.json("POST", f"{_BASE}/{input_id}/stop"))

    async def delete(self, input_id: str) -> None:
        await self._http.json("DELETE", f"{_BASE}/{input_id}")

    async def trigger(
        self, input_id: str, payload: Any = None, *, headers: dict[str, str] | None = None, path: str = ""
    ) -> TriggerResult:
        """Fire the input with ``payload`` as yourself (no signature needed)."""
        body = {"payload": payload if payload is not None else {}, "headers": headers or {}, "path": path}
        return TriggerResult.model_validate(await self._http.json("POST", f"{_BASE}/{input_id}/trigger", json=body))

    async def metrics(self, input_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._http.json("GET", f"{_BASE}/{input_id}/metrics")
        return data

    async def requests(self, input_id: str, *, limit: int = 50, offset: int = 0) -> builtins.list[InputRequest]:
        """The audit log of dispatched requests, newest first."""
        params = {"limit": limit, "offset": offset}
        data = await self._http.json("GET", f"{_BASE}/{input_id}/requests", params=params)
        return [InputRequest.model_validate(r) for r in data["items"]]
