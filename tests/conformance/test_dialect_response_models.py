"""The dialect doors' response models name every field the upstream SDKs read (symbiont-sdk 0.3.0,
holokai-neuron-sdk 0.1.1), by its wire name, and send every field those SDKs require.

Each server model is compared with the upstream model of the same answer: the upstream wire names
(aliases where set) are all declared; a field upstream requires is required here too (the handlers
always send it); the extra keys Portside adds are listed explicitly. Types differ on purpose where
upstream parses (``datetime``, enums): the server declares the JSON it sends (ISO strings, strings).
"""

from __future__ import annotations

import pytest
import symbiont.models as sym
from holokai_neuron_sdk import protocol as neuron
from pydantic import BaseModel

from portside.server.inputs import schemas as inputs
from portside.server.knowledge import schemas as knowledge
from portside.server.mcp_hub import schemas as mcp_hub
from portside.server.metrics import schemas as metrics
from portside.server.reviews import schemas as reviews
from portside.server.workers import neuron_schemas
from portside.server.workflows import schemas as workflows

#: (server model, upstream model, keys only Portside sends).
PAIRS: list[tuple[type[BaseModel], type[BaseModel], set[str]]] = [
    (knowledge.SymbiontVectorMetadata, sym.VectorMetadata, set()),
    (knowledge.SymbiontKnowledgeItem, sym.KnowledgeItem, set()),
    (knowledge.SymbiontVectorSearchResult, sym.VectorSearchResult, set()),
    (knowledge.SymbiontVectorSearchResponse, sym.VectorSearchResponse, set()),
    (knowledge.SymbiontContextResponse, sym.ContextResponse, set()),
    (mcp_hub.SymbiontMcpConnection, sym.McpConnectionInfo, {"id", "transport"}),
    (mcp_hub.SymbiontMcpTool, sym.McpToolInfo, set()),
    (mcp_hub.SymbiontMcpResource, sym.McpResourceInfo, set()),
    (inputs.SymbiontRoutingRule, sym.AgentRoutingRule, set()),
    (inputs.SymbiontResponseControl, sym.HttpResponseControlConfig, set()),
    (inputs.SymbiontInputConfig, sym.HttpInputConfig, set()),
    (inputs.SymbiontInputServer, sym.HttpInputServerInfo, {"webhook_path"}),
    (inputs.SymbiontTriggerResult, sym.WebhookTriggerResponse, set()),
    (
        workflows.WorkflowExecutionOut,
        sym.WorkflowExecutionResponse,
        {"workflow_id", "flow_version", "completed_at", "error", "agent_id", "status_url"},
    ),
    (reviews.ReviewSubmitted, sym.ReviewSessionResponse, set()),
    (metrics.SymbiontHealth, sym.HealthResponse, {"checks", "warnings"}),
    (neuron_schemas.NeuronCapability, neuron.Capability, set()),
    (neuron_schemas.NeuronRegistered, neuron.RegisteredFrame, {"protocolVersion"}),
]


def _wire(model: type[BaseModel]) -> dict[str, bool]:
    """Wire name -> required."""
    return {(f.alias or name): f.is_required() for name, f in model.model_fields.items()}


@pytest.mark.parametrize(("server", "upstream", "extra"), PAIRS, ids=lambda v: getattr(v, "__name__", ""))
def test_server_model_covers_the_upstream_model(
    server: type[BaseModel], upstream: type[BaseModel], extra: set[str]
) -> None:
    ours, theirs = _wire(server), _wire(upstream)
    assert set(theirs) - set(ours) == set(), "upstream fields the server does not declare"
    assert set(ours) - set(theirs) == extra
    optional_here = [name for name, required in theirs.items() if required and not ours[name]]
    assert optional_here == [], "fields upstream requires but the server declares optional"
