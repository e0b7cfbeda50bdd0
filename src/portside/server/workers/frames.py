"""Rendering of queued frames as Server-Sent Events, for the neuron and the native protocol.

Neuron frames must match holokai-neuron-sdk's strict models exactly: an unknown key makes the SDK
drop the frame, so optional keys are omitted rather than sent as null.

Events are encoded by sse-starlette's ``ServerSentEvent`` with ``\n`` line endings (the bytes the
holokai SDK and ``portside.Worker`` have always parsed): ``event: <type>\ndata: <json>\n\n``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sse_starlette import ServerSentEvent

from portside.server.clock import isoformat, utcnow
from portside.server.workers.domain import CancelFrame, DisconnectFrame, Frame, LeaseFrame, RegisteredFrame

SSE_SEP = "\n"


def _event(name: str, data: dict[str, Any]) -> bytes:
    return ServerSentEvent(json.dumps(data, separators=(",", ":")), event=name, sep=SSE_SEP).encode()


def neuron_frame(frame: Frame) -> dict[str, Any]:
    """The neuron-protocol JSON object of one frame."""
    if isinstance(frame, LeaseFrame):
        task: dict[str, Any] = {
            "taskId": frame.task_id,
            "workflowId": frame.workflow_id or frame.task_id,
            "capability": frame.capability,
            "input": frame.input,
            "attempt": max(0, frame.attempt - 1),
        }
        if frame.on_behalf_of is not None:
            task["onBehalfOf"] = frame.on_behalf_of
        if frame.metadata:
            task["metadata"] = frame.metadata
        lease: dict[str, Any] = {"leaseId": frame.lease_id, "expiresAt": isoformat(frame.expires_at), "task": task}
        if frame.input_schema is not None:
            lease["inputSchema"] = frame.input_schema
        if frame.output_schema is not None:
            lease["outputSchema"] = frame.output_schema
        return {"type": "lease", "lease": lease, "sentAt": isoformat(utcnow())}
    if isinstance(frame, CancelFrame):
        return {"type": "cancel", "leaseId": frame.lease_id, "reason": frame.reason, "cancelledAt": isoformat(frame.at)}
    if isinstance(frame, RegisteredFrame):
        return {
            "type": "registered",
            "sessionId": frame.session_id,
            "capabilities": [c.wire() for c in frame.capabilities],
            "acceptedAt": isoformat(frame.accepted_at),
        }
    out: dict[str, Any] = {
        "type": "disconnect",
        "reason": frame.reason,
        "reconnectable": frame.reconnectable,
        "sentAt": isoformat(utcnow()),
    }
    if frame.code is not None:
        out["code"] = frame.code
    return out


def render_neuron(frames: Iterable[Frame]) -> bytes:
    """One SSE event per frame; ``event:`` carries the frame type."""
    parts = []
    for frame in frames:
        data = neuron_frame(frame)
        parts.append(_event(str(data["type"]), data))
    return b"".join(parts)


def native_lease(frame: LeaseFrame) -> dict[str, Any]:
    return {
        "leaseId": frame.lease_id,
        "expiresAt": isoformat(frame.expires_at),
        "taskId": frame.task_id,
        "workflowId": frame.workflow_id,
        "capability": frame.capability,
        "onBehalfOf": frame.on_behalf_of,
        "input": frame.input,
        "attempt": frame.attempt,
        "metadata": frame.metadata,
        "inputSchema": frame.input_schema,
        "outputSchema": frame.output_schema,
    }


def render_native(frames: Iterable[Frame], *, lease_ttl_ms: int = 0, heartbeat_ms: int = 0) -> bytes:
    """Native Portside Worker stream: consecutive leases are batched into one ``leases`` event."""
    parts: list[bytes] = []
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        if batch:
            parts.append(_event("leases", {"type": "leases", "leases": list(batch)}))
            batch.clear()

    for frame in frames:
        if isinstance(frame, LeaseFrame):
            batch.append(native_lease(frame))
            continue
        flush()
        if isinstance(frame, RegisteredFrame):
            parts.append(
                _event(
                    "registered",
                    {
                        "type": "registered",
                        "sessionId": frame.session_id,
                        "capabilities": [c.stored() for c in frame.capabilities],
                        "acceptedAt": isoformat(frame.accepted_at),
                        "leaseTtlMs": lease_ttl_ms,
                        "heartbeatIntervalMs": heartbeat_ms,
                    },
                )
            )
        elif isinstance(frame, CancelFrame):
            parts.append(
                _event(
                    "cancel",
                    {"type": "cancel", "leaseId": frame.lease_id, "reason": frame.reason, "at": isoformat(frame.at)},
                )
            )
        elif isinstance(frame, DisconnectFrame):
            parts.append(
                _event(
                    "disconnect",
                    {
                        "type": "disconnect",
                        "reason": frame.reason,
                        "code": frame.code,
                        "reconnectable": frame.reconnectable,
                    },
                )
            )
    flush()
    return b"".join(parts)
