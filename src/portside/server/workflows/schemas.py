"""Response model of the Symbiont door's ``/api/v1/workflows`` routes."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from portside.server.api.wire import WireModel

__all__ = ["WorkflowExecutionOut"]


class WorkflowExecutionOut(WireModel):
    """``symbiont.WorkflowExecutionResponse`` plus the execution's details.

    ``result`` is the flow's output once it completed (a non-object output as ``{"output": ...}``),
    else null.
    """

    execution_id: str
    status: str
    started_at: str
    result: dict[str, Any] | None = None
    workflow_id: str
    flow_version: int
    completed_at: str | None = None
    error: dict[str, Any] | None = Field(default=None, description="``message`` plus the error's details.")
    agent_id: Any = Field(default=None, description="The ``agent_id`` the workflow was run with (its metadata).")
    status_url: str
