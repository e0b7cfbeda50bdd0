"""Imports every area's models so that one metadata describes the whole store."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from portside.server.store.base import Base

#: Modules that define tables. An area adds its ``models`` module here.
MODEL_MODULES: list[str] = [
    "portside.server.store.core_models",
    "portside.server.sandboxes.models",
    "portside.server.skills.models",
    "portside.server.workers.models",
    "portside.server.agents.models",
    "portside.server.flows.models",
    "portside.server.reviews.tables",
    "portside.server.secrets.tables",
    "portside.server.deployments.tables",
    "portside.server.knowledge.models",
    "portside.server.mcp_hub.models",
    "portside.server.inputs.models",
]


def load_all_models() -> MetaData:
    """Import every model module and return the shared metadata."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata
