"""JSON shapes of agents, flows and executions shared by the native and AI Spine doors.

The native shapes are supersets of what ai-spine-sdk's models read (``flow_id``, ``execution_id``,
``agent_id``, ``type``, ``configuration`` ...), so both doors use the same functions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portside.server.agents.service import Agent
from portside.server.clock import isoformat
from portside.server.flows.views import ExecutionView, FlowView, NodeRunView


def _ts(value: datetime | None) -> str | None:
    return isoformat(value) if value is not None else None


def agent_dict(agent: Agent) -> dict[str, Any]:
    return {
        "agent_id": agent.id,
        "id": agent.id,
        "name": agent.name,
        "description": agent.description,
        "endpoint": agent.endpoint,
        "capability": agent.capability,
        "capabilities": agent.capabilities,
        "type": agent.type,
        "agent_type": agent.type,
        "backing": agent.backing,
        "configuration": agent.configuration,
        "metadata": agent.metadata,
        "is_active": agent.is_active,
        "created_by": agent.created_by,
        "created_at": _ts(agent.created_at),
        "updated_at": _ts(agent.updated_at),
    }


def flow_dict(view: FlowView) -> dict[str, Any]:
    definition = view.definition.model_dump(mode="json", exclude_none=True)
    definition["nodes"] = view.nodes
    return {
        **definition,
        "flow_id": view.flow_id,
        "name": view.name,
        "description": view.description,
        "version": view.label,
        "revision": view.revision,
        "current_revision": view.current_revision,
        "checksum": view.checksum,
        "source": view.source,
        "created_by": view.created_by,
        "created_at": _ts(view.created_at),
        "updated_at": _ts(view.updated_at),
    }


def flow_version_dict(view: FlowView) -> dict[str, Any]:
    return {
        "flow_id": view.flow_id,
        "revision": view.revision,
        "version": view.label,
        "checksum": view.checksum,
        "source": view.source,
        "created_at": _ts(view.version_created_at),
        "current": view.revision == view.current_revision,
    }


def node_dict(node: NodeRunView, execution_id: str) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "node_id": node.node_id,
        "parent_id": node.parent_id,
        "kind": node.kind,
        "status": node.status,
        "attempts": node.attempts,
        "input_data": node.input_data,
        "output_data": node.output_data,
        "error_message": node.error_message,
        "error": node.error,
        "attempt_log": node.attempt_log,
        "external_ref": node.external_ref,
        "started_at": _ts(node.started_at),
        "completed_at": _ts(node.completed_at),
        "execution_time_ms": node.duration_ms,
        "updated_at": _ts(node.updated_at),
    }


def execution_dict(view: ExecutionView, *, nodes: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "execution_id": view.execution_id,
        "id": view.execution_id,
        "flow_id": view.flow_id,
        "flow_revision": view.flow_version,
        "status": view.status,
        "input_data": view.input_data,
        "output_data": view.output_data,
        "error_message": view.error_message,
        "error": view.error,
        "metadata": view.metadata,
        "cancel_requested": view.cancel_requested,
        "resumes": view.resumes,
        "created_at": _ts(view.created_at),
        "updated_at": _ts(view.updated_at),
        "started_at": _ts(view.started_at),
        "completed_at": _ts(view.completed_at),
        "duration_ms": view.duration_ms,
    }
    if nodes:
        out["nodes"] = [node_dict(n, view.execution_id) for n in view.nodes]
    return out
