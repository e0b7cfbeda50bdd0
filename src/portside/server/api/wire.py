"""Typed responses that keep the wire exactly as the handler built it.

Routes of an :class:`APIRouter` built with ``route_class=WireRoute`` serialise their ``response_model``
with ``exclude_unset``: a handler that returns a dict gets back exactly the keys it returned (a
model's defaults never add keys the wire did not carry), while the OpenAPI documents the model.
Response models derive from :class:`WireModel`, which keeps undeclared keys (``extra="allow"``), so a
declared model can never silently drop a field a handler adds later.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute

from portside.types.common import Model


class WireRoute(APIRoute):
    """An API route whose response model never adds unset fields (``response_model_exclude_unset``)."""

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        kwargs["response_model_exclude_unset"] = True
        super().__init__(path, endpoint, **kwargs)


class WireModel(Model):
    """Base of server response models: SDK ``Model`` semantics (unknown keys kept, names or aliases)."""


class Deleted(WireModel):
    """``{"<id field>": ..., "deleted": true}`` answers of delete routes."""

    deleted: bool
