"""Response models of the neuron door (``/neuron/*``, ``/api/v1/auth/token``): holokai-neuron-sdk's frames.

Field names are Python's; the wire names (camelCase) are the aliases. Capabilities are kept loose
(``scope`` is ``"any"`` or ``{"onBehalfOf": ...}``).
"""

from __future__ import annotations

from pydantic import Field

from portside.server.api.wire import WireModel

__all__ = [
    "NeuronCapability",
    "NeuronCapabilityUpdated",
    "NeuronHeartbeat",
    "NeuronLeaseOutcome",
    "NeuronOk",
    "NeuronRegistered",
    "NeuronToken",
]


class NeuronCapability(WireModel):
    """A capability as accepted: ``{type, scope, concurrency[, leaseTtlMs]}``."""

    type: str
    scope: str | dict[str, str] = Field(description='``"any"`` or ``{"onBehalfOf": "<user>"}``.')
    concurrency: int
    lease_ttl_ms: int | None = Field(default=None, alias="leaseTtlMs")


class NeuronRegistered(WireModel):
    """The ``registered`` frame, plus the negotiated protocol version."""

    type: str = Field(description='Always ``"registered"``.')
    session_id: str = Field(alias="sessionId")
    capabilities: list[NeuronCapability]
    accepted_at: str = Field(alias="acceptedAt")
    protocol_version: str = Field(alias="protocolVersion")


class NeuronOk(WireModel):
    ok: bool


class NeuronCapabilityUpdated(NeuronOk):
    capability: NeuronCapability


class NeuronHeartbeat(NeuronOk):
    """Which in-flight leases were renewed and which have ended (the worker must stop them)."""

    renewed: list[str]
    ended: list[str]
    server_time: str = Field(alias="serverTime")


class NeuronLeaseOutcome(NeuronOk):
    """The answer to ``ack``/``nack``: the lease, its task and the task's status now."""

    lease_id: str = Field(alias="leaseId")
    task_id: str = Field(alias="taskId")
    status: str | None = None


class NeuronToken(WireModel):
    """A worker token, under the names the clients in use read (camelCase and snake_case)."""

    token: str
    access_token_camel: str = Field(alias="accessToken")
    access_token: str
    token_type_camel: str = Field(alias="tokenType")
    token_type: str
    expires_in_camel: int = Field(alias="expiresIn")
    expires_in: int
    expires_at: str = Field(alias="expiresAt")
    neuron_id: str | None = Field(default=None, alias="neuronId")
    protocol_version: str = Field(alias="protocolVersion")
