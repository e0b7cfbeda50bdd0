"""The server's response models and the SDK's ``portside.types`` agree field by field.

Most response models *are* SDK types or subclasses of them (one declaration); the few declared on
the server (their wire has an ``id`` key that the SDK offers as a property) are compared here: same
names, same types, same optionality and defaults; extra server fields are listed explicitly.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from portside.server.deployments import schemas as deployments
from portside.server.flows import schemas as flows
from portside.server.inputs import schemas as inputs
from portside.server.knowledge import schemas as knowledge
from portside.server.mcp_hub import schemas as mcp_hub
from portside.server.reviews import schemas as reviews
from portside.server.secrets import schemas as secrets
from portside.types import agent_deployments as t_deployments
from portside.types import agents as t_agents
from portside.types import flows as t_flows
from portside.types import inputs as t_inputs
from portside.types import knowledge as t_knowledge
from portside.types import mcp_hub as t_mcp
from portside.types import reviews as t_reviews
from portside.types import secrets as t_secrets

#: Server models declared separately from the SDK type of the same shape, and the wire-only keys they add.
SEPARATE: list[tuple[type[BaseModel], type[BaseModel], set[str]]] = [
    (flows.AgentOut, t_agents.Agent, {"id", "agent_type"}),
    (flows.NodeRunOut, t_flows.NodeRun, {"execution_id", "updated_at"}),
    (flows.ExecutionOut, t_flows.Execution, {"id"}),
]
#: Server model -> SDK type for nested models.
COUNTERPART = {server: sdk for server, sdk, _ in SEPARATE}

#: Response models that reuse (or extend) the SDK's type.
SHARED: list[tuple[type[BaseModel], type[BaseModel]]] = [
    (flows.FlowOut, t_flows.Flow),
    (reviews.ReviewSessionOut, t_reviews.ReviewSession),
    (reviews.AnalysisOut, t_reviews.Analysis),
    (reviews.SignedTool, t_reviews.SignedTool),
    (reviews.SigningKeyOut, t_reviews.SigningKey),
    (secrets.SecretInfoOut, t_secrets.SecretInfo),
    (secrets.SecretOut, t_secrets.Secret),
    (secrets.SecretAuditPage, t_secrets.SecretAuditPage),
    (secrets.SecretBackendOut, t_secrets.SecretBackend),
    (knowledge.KnowledgeItem, t_knowledge.KnowledgeItem),
    (knowledge.KnowledgeItemList, t_knowledge.KnowledgeItemList),
    (knowledge.KnowledgeSearchResult, t_knowledge.KnowledgeSearchResult),
    (knowledge.KnowledgeContext, t_knowledge.KnowledgeContext),
    (mcp_hub.McpServerOut, t_mcp.McpServer),
    (mcp_hub.McpCallResult, t_mcp.McpCallResult),
    (inputs.HttpInputOut, t_inputs.HttpInput),
    (inputs.TriggerResult, t_inputs.TriggerResult),
    (deployments.SymbiontAgentOut, t_deployments.SymbiontAgent),
    (deployments.DeploymentOut, t_deployments.Deployment),
    (deployments.CompileResult, t_deployments.CompileResult),
    (deployments.DeploymentTaskOut, t_deployments.DeploymentTask),
    (deployments.AgentStatusOut, t_deployments.AgentStatus),
    (deployments.AgentMetricsOut, t_deployments.AgentMetrics),
]


def _as_sdk(annotation: Any) -> Any:
    """The annotation with server models replaced by their SDK counterparts (recursively)."""
    if isinstance(annotation, type) and annotation in COUNTERPART:
        return COUNTERPART[annotation]
    args = get_args(annotation)
    if not args:
        return annotation
    return (get_origin(annotation), tuple(_as_sdk(a) for a in args))


def _norm(annotation: Any) -> Any:
    args = get_args(annotation)
    return (get_origin(annotation), tuple(_norm(a) for a in args)) if args else annotation


@pytest.mark.parametrize(("server", "sdk", "wire_only"), SEPARATE, ids=lambda v: getattr(v, "__name__", ""))
def test_separate_models_agree_field_by_field(
    server: type[BaseModel], sdk: type[BaseModel], wire_only: set[str]
) -> None:
    s_fields, k_fields = server.model_fields, sdk.model_fields
    assert set(s_fields) - set(k_fields) == wire_only
    assert set(k_fields) <= set(s_fields), f"the server lacks {set(k_fields) - set(s_fields)}"
    for name, k in k_fields.items():
        s = s_fields[name]
        assert _as_sdk(s.annotation) == _norm(k.annotation), f"{server.__name__}.{name}: {s.annotation}"
        assert s.is_required() == k.is_required(), f"{server.__name__}.{name}: optionality differs"
        if not k.is_required():
            assert s.get_default(call_default_factory=True) == k.get_default(call_default_factory=True), name


@pytest.mark.parametrize(("server", "sdk"), SHARED, ids=lambda v: getattr(v, "__name__", ""))
def test_shared_models_are_the_sdk_types(server: type[BaseModel], sdk: type[BaseModel]) -> None:
    assert issubclass(server, sdk)
    for name, field in sdk.model_fields.items():
        assert server.model_fields[name].annotation == field.annotation, name
        assert server.model_fields[name].is_required() == field.is_required(), name
