"""Query parameters shared by list routes: pagination bounds, and one value per scalar parameter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import get_args, get_origin

from fastapi import Request
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant

from portside.server.errors import InvalidInput

#: Largest ``offset`` a list route accepts (beyond any table; keeps values inside 32-bit SQL integers).
MAX_OFFSET = 2**31 - 1
#: Largest ``page`` number of page-numbered lists.
MAX_PAGE = 10_000_000


def _query_fields(dependant: Dependant) -> Iterator[ModelField]:
    yield from dependant.query_params
    for dep in dependant.dependencies:
        yield from _query_fields(dep)


def _is_sequence(field: ModelField) -> bool:
    annotation = field.field_info.annotation
    args = (annotation, *get_args(annotation))
    return any(get_origin(a) in (list, tuple, set, frozenset) or a in (list, tuple, set) for a in args)


async def single_query_values(request: Request) -> None:
    """400 ``validation_error`` for a scalar query parameter given more than once (``?a=1&a=2``).

    FastAPI would silently keep the last value; the OpenAPI document says the parameter is one value,
    so a repeated one is a malformed request (an app-wide dependency, :func:`portside.server.app.create_app`)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    for field in _query_fields(dependant):
        if not _is_sequence(field) and len(request.query_params.getlist(field.alias)) > 1:
            raise InvalidInput(f"query parameter {field.alias!r} takes one value", details={"parameter": field.alias})
