"""The list of feature areas mounted into the app.

Each area module has ``install(app, ctx)``: it registers its services in
``ctx.services``, includes its routers and adds start/stop hooks. Adding an
area to Portside is one line here.
"""

from __future__ import annotations

AREAS: list[str] = [
    "portside.server.api.v1.system",
    "portside.server.api.v1.keys",
    "portside.server.api.v1.sandboxes",
    "portside.server.api.v1.browser",
    "portside.server.api.v1.skills",
    "portside.server.api.v1.workers",
    "portside.server.agents.area",
    "portside.server.flows.area",
    "portside.server.dialects.aispine",
    "portside.server.mcp_server.area",
    "portside.server.api.v1.reviews",
    "portside.server.api.v1.secrets",
    "portside.server.api.v1.agent_deployments",
    "portside.server.dialects.symbiont",
    "portside.server.mcp_hub.area",
    "portside.server.api.v1.knowledge",
    "portside.server.inputs.area",
    "portside.server.metrics.area",
    "portside.server.retention.area",
]
