"""The OpenAPI document as a contract: what the server really answers, not FastAPI's defaults.

``install_openapi(app, ctx)`` replaces ``app.openapi`` by a builder that post-processes FastAPI's
document:

- every operation's request-validation reply is the real ``400`` with the door's error body (the
  native ``ErrorBody``, or a dialect's shape for the dialect's path prefixes), never FastAPI's 422;
- the common errors (401, 403, 404, 409, 413, 429, 500, 503) are documented with that body;
- ``bearerAuth`` (``Authorization: Bearer``) and ``apiKeyAuth`` (``X-API-Key``) security schemes, set
  on every operation that authenticates (optional on the routes open to anyone);
- streaming (SSE, NDJSON), binary and text routes are declared with their real media types
  (:data:`MEDIA`), not as JSON.

Operation ids are ``<area>_<action>`` (``sandboxes_create``): :func:`operation_id` is the app's
``generate_unique_id_function``. ``install_docs`` serves ``/docs`` and ``/redoc`` with the Swagger UI
and ReDoc assets shipped in the ``fastapi-offline`` package: no CDN.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from portside.server.http.errors import renderer_for_path
from portside.server.reviews.service import STATUSES as REVIEW_STATUSES
from portside.server.secrets.backends import SECRET_NAME_RE
from portside.server.workers.capabilities import CAPABILITY_TYPE_RE, MAX_TYPE_LEN, WORKER_ID_RE
from portside.types.common import ErrorBody

# ---------------------------------------------------------------- operation ids


def _snake(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("xes") or word.endswith("ses"):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


def operation_id(route: Any) -> str:
    """``<area>_<action>``: the route's first tag (else its first path segment) and its function's
    name without the area's name (``create_sandbox`` under ``sandboxes`` is ``sandboxes_create``; under
    ``agent deployments``, ``get_deployment`` is ``agent_deployments_get`` and ``get_agent`` stays)."""
    area = _snake(str(route.tags[0])) if route.tags else _snake(route.path.strip("/").split("/")[0] or "root")
    last = area.rsplit("_", 1)[-1]
    name = _snake(route.name)
    for phrase in (area, _singular(area)):
        name = re.sub(rf"(^|_){phrase}(_|$)", r"\1", name) if "_" in phrase else name
    words = [w for w in name.split("_") if w and w not in {last, _singular(last)}]
    return f"{area}_{'_'.join(words) or _snake(route.name)}"


# ---------------------------------------------------------------- error bodies


class AiSpineErrorBody(BaseModel):
    """The error body of the ai-spine door (``/flows``, ``/executions``, ``/agents`` ...)."""

    message: str
    detail: str
    code: str
    details: dict[str, Any] = Field(description="Always carries ``error_code`` (the code again).")


class SymbiontErrorBody(BaseModel):
    """The error body of the symbiont door (``/api/v1``): ``symbiont.ErrorResponse`` plus extras."""

    error: str
    code: str
    details: dict[str, Any]
    message: str
    request_id: str | None = None


#: The body each dialect's error renderer writes (keyed by the renderer's ``module.qualname``).
ERROR_MODELS: dict[str, type[BaseModel]] = {
    "portside.server.http.errors.render_native": ErrorBody,
    "portside.server.dialects.aispine.render_error": AiSpineErrorBody,
    "portside.server.dialects.symbiont.render_error": SymbiontErrorBody,
}

#: Error statuses every operation may answer, and what they mean.
COMMON_ERRORS: dict[int, str] = {
    400: "Invalid request (bad JSON, a missing or malformed field or parameter): `validation_error`.",
    401: "Missing or invalid API key.",
    403: "The key lacks the scope this operation needs, or does not own the resource.",
    404: "No such resource (or not visible to this key).",
    409: "Conflict with the resource's current state.",
    413: "The request body (or an upload) exceeds the configured limit.",
    429: "Rate limited; retry after `Retry-After` seconds.",
    500: "Internal error (a bug): the body carries the request id to report.",
    502: "An upstream the server called failed: the sandbox runtime (`ship_error`), an MCP server "
    "(`mcp_connect_failed`, `mcp_error`) or a secret backend (`secret_backend_unreachable`).",
    503: "A dependency (sandbox driver, store, engine) is unavailable.",
}

# ---------------------------------------------------------------- streaming, binary and text routes

_SSE = "text/event-stream"
_BINARY = "application/octet-stream"

#: Routes whose success reply is not a JSON document: ``(method, path) -> (status, media types, text)``.
#: A media type maps to its schema (None for a free-form body).
MEDIA: dict[tuple[str, str], tuple[int, dict[str, dict[str, Any] | None], str]] = {
    ("GET", "/v1/sandboxes/{sandbox_id}/filesystem/download"): (
        200,
        {_BINARY: {"type": "string", "format": "binary"}},
        "The file's bytes (streamed, with Content-Length and Content-Disposition).",
    ),
    ("GET", "/v1/executions/{execution_id}/events"): (
        200,
        {_SSE: {"type": "string"}},
        "Server-sent events: the execution's status and node events, until it ends.",
    ),
    ("GET", "/v1/workers/{worker_id}/events"): (
        200,
        {_SSE: {"type": "string"}},
        "Server-sent events: `registered`, `lease`, `cancel` and `disconnect` frames for the worker.",
    ),
    ("GET", "/neuron/events"): (
        200,
        {_SSE: {"type": "string"}},
        "Server-sent events: the neuron's `registered`, `lease`, `cancel` and `disconnect` frames.",
    ),
    ("GET", "/metrics/prometheus"): (
        200,
        {"text/plain": {"type": "string"}},
        "Prometheus text exposition format.",
    ),
}

#: Public webhook routes answer what the input is configured to answer (JSON or text).
_HOOK_REPLY: dict[str, dict[str, Any] | None] = {"application/json": None, "text/plain": {"type": "string"}}
for _method in ("POST", "PUT", "PATCH"):
    for _path in ("/hooks/{input_id}", "/hooks/{input_id}/{subpath}"):
        MEDIA[(_method, _path)] = (200, _HOOK_REPLY, "The input's configured reply (JSON or text).")

# ---------------------------------------------------------------- security

#: Dependencies that authenticate the caller (required), by ``module.qualname``.
_AUTH_REQUIRED = {
    "portside.server.deps.current_principal",
    "portside.server.deps.require.<locals>._dep",
    "portside.server.api.v1.workers.requires.<locals>.dep",
    "portside.server.api.v1.workers.worker_caller",
}
_AUTH_OPTIONAL = {"portside.server.deps.optional_principal"}

SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`sk_...`), or on the worker routes a worker token, as `Authorization: Bearer`.",
    },
    "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The API key."},
}
_SECURED: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyAuth": []}]


def _calls(dependant: Dependant) -> Iterator[str]:
    for dep in dependant.dependencies:
        call = dep.call
        if call is not None:
            yield f"{getattr(call, '__module__', '')}.{getattr(call, '__qualname__', '')}"
        yield from _calls(dep)


def api_routes(app: FastAPI) -> Iterator[Any]:
    """The app's API routes as mounted (with their routers' prefixes and dependencies)."""
    iter_contexts = getattr(fastapi_routing, "iter_route_contexts", None)
    if iter_contexts is None:  # FastAPI before route contexts: the routes are flat
        yield from (r for r in app.routes if isinstance(r, APIRoute))
        return
    for context in iter_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def route_security(route: Any) -> str:
    """``required``, ``optional`` or ``none``: how ``route`` authenticates its caller."""
    calls = set(_calls(route.dependant))
    if calls & _AUTH_REQUIRED:
        return "required"
    return "optional" if calls & _AUTH_OPTIONAL else "none"


# ---------------------------------------------------------------- the document


def _template(path: str) -> str:
    """A route path as OpenAPI writes it (``{subpath:path}`` is ``{subpath}``)."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def _error_responses(schema_ref: str, existing: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, text in COMMON_ERRORS.items():
        if str(status) in existing:
            continue
        response: dict[str, Any] = {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": schema_ref}}},
        }
        if status == 429:
            response["headers"] = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
        out[str(status)] = response
    return out


# ---------------------------------------------------------------- parameter rules the services enforce

_SECRET_NAME = {"pattern": SECRET_NAME_RE.pattern}
_WORKER_ID = {"pattern": WORKER_ID_RE.pattern}
_REVIEW_STATUS = {"enum": list(REVIEW_STATUSES)}


def _rules() -> dict[tuple[str, str], dict[str, Any]]:
    """``(path prefix, parameter name) -> schema keywords`` for path and query parameters whose rule a
    service checks with its own error code (so FastAPI must not): the document states the rule, the
    service keeps its code. The longest matching prefix wins."""
    return {
        ("/v1/secrets/", "agent_id"): _SECRET_NAME,
        ("/v1/secrets/", "name"): _SECRET_NAME,
        ("/api/v1/secrets/", "agent_id"): _SECRET_NAME,
        ("/api/v1/secrets/", "secret_name"): _SECRET_NAME,
        ("/v1/workers/", "worker_id"): _WORKER_ID,
        ("/neuron/events", "neuronId"): _WORKER_ID,
        ("/v1/capabilities/", "ctype"): {"pattern": CAPABILITY_TYPE_RE.pattern, "maxLength": MAX_TYPE_LEN},
        ("/v1/skills/payloads/", "payload_ref"): {"pattern": r"^(blob:)?sha256-"},
        ("/v1/reviews", "status"): _REVIEW_STATUS,
        ("/api/v1/tool-review/sessions", "status"): _REVIEW_STATUS,
    }


PARAMETER_RULES: dict[tuple[str, str], dict[str, Any]] = _rules()


def _parameter_rule(path: str, name: str) -> dict[str, Any] | None:
    found = [
        (prefix, rule) for (prefix, param), rule in PARAMETER_RULES.items() if param == name and path.startswith(prefix)
    ]
    return max(found, key=lambda item: len(item[0]))[1] if found else None


# ---------------------------------------------------------------- free-form JSON values

#: Any JSON value the server accepts and can store (``StrictJsonMiddleware``): integral numbers must
#: fit in 64 bits (signed), at any depth. Written without a union (``not`` plus ``items`` and
#: ``additionalProperties``, which apply only to arrays and objects) because client generators
#: (openapi-python-client) cannot follow a recursive ``anyOf``.
JSON_VALUE: dict[str, Any] = {
    "description": "Any JSON value; integers must fit in 64 bits (larger ones are 400 `validation_error`).",
    "not": {"type": "integer", "anyOf": [{"minimum": 2**63}, {"maximum": -(2**63)}]},
    "items": {"$ref": "#/components/schemas/JsonValue"},
    "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
}
_JSON_REF = {"$ref": "#/components/schemas/JsonValue"}
_SHAPE_KEYS = {"type", "$ref", "anyOf", "oneOf", "allOf", "not", "enum", "const", "properties", "items", "format"}


def _free_form(schema: Any) -> bool:
    return schema is True or (isinstance(schema, dict) and not (_SHAPE_KEYS & set(schema)))


def _bounded(schema: Any, close: bool = False) -> Any:
    """A value slot's schema: free-form (``Any``) becomes a :data:`JSON_VALUE` reference."""
    if _free_form(schema):
        return {**schema, **_JSON_REF} if isinstance(schema, dict) else dict(_JSON_REF)
    return _bound_json(schema, close=close)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            yield ref.rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _closure(schemas: dict[str, Any], roots: Iterator[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        todo.extend(_refs(schemas[name]))
    return seen


def _request_only(spec: dict[str, Any]) -> set[str]:
    """Component schemas used by request bodies or parameters and by no response.

    Only these get :data:`JSON_VALUE` bounds: a reply may carry a number the server accepted as a
    float (``1e300``) that JSON Schema cannot tell from a too-large integer."""
    schemas: dict[str, Any] = spec.get("components", {}).get("schemas", {})
    ops = [op for item in spec.get("paths", {}).values() for op in item.values() if isinstance(op, dict)]
    requests = _closure(schemas, (r for op in ops for key in ("requestBody", "parameters") for r in _refs(op.get(key))))
    replies = _closure(schemas, (r for op in ops for r in _refs(op.get("responses"))))
    return requests - replies


def _bound_json(schema: Any, *, close: bool = False) -> Any:
    """``schema`` with every free-form value (``Any``, ``dict[str, Any]``'s values, extra keys of an
    open model, ``list[Any]``'s items) replaced by :data:`JSON_VALUE`, so a client generating data
    never sends a value the server must refuse (an integer beyond 64 bits)."""
    if not isinstance(schema, dict):
        return schema
    if isinstance(schema.get("properties"), dict):
        schema["properties"] = {name: _bounded(sub, close) for name, sub in schema["properties"].items()}
        if close and "additionalProperties" not in schema:  # a model that ignores unknown keys
            schema["additionalProperties"] = dict(_JSON_REF)
    for key in ("items", "additionalProperties"):
        if key in schema and schema[key] is not False:
            schema[key] = _bounded(schema[key], close)
    for key in ("anyOf", "oneOf", "prefixItems"):
        if isinstance(schema.get(key), list):
            schema[key] = [_bounded(sub, close) for sub in schema[key]]
    for key in ("allOf",):
        if isinstance(schema.get(key), list):
            schema[key] = [_bound_json(sub, close=close) for sub in schema[key]]
    return schema


def build_openapi(app: FastAPI, ctx: Any) -> dict[str, Any]:
    """FastAPI's document for ``app`` corrected into the contract the server keeps."""
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in {*ERROR_MODELS.values()}:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for name in _request_only(spec):
        _bound_json(schemas[name], close=True)
    schemas["JsonValue"] = JSON_VALUE
    components["securitySchemes"] = SECURITY_SCHEMES
    routes = {
        (method, _template(route.path)): route
        for route in api_routes(app)
        if route.include_in_schema
        for method in route.methods
    }
    for path, item in spec.get("paths", {}).items():
        renderer = renderer_for_path(ctx, path.split("{", 1)[0])
        model = ERROR_MODELS.get(f"{renderer.__module__}.{renderer.__qualname__}", ErrorBody)
        ref = f"#/components/schemas/{model.__name__}"
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            key = (method.upper(), path)
            for param in op.get("parameters", []):
                rule = _parameter_rule(path, param.get("name", ""))
                if rule is not None and isinstance(param.get("schema"), dict):
                    schema = param["schema"]
                    target = next((b for b in schema.get("anyOf", []) if b.get("type") == "string"), schema)
                    target.update(rule)
                _bound_json(param.get("schema"))
            for media in op.get("requestBody", {}).get("content", {}).values():
                if "schema" in media:
                    media["schema"] = _bound_json(media["schema"])
            responses: dict[str, Any] = op["responses"]
            responses.pop("422", None)
            if key in MEDIA:
                status, media, text = MEDIA[key]
                for code in [c for c in responses if c.startswith("2")]:
                    del responses[code]
                responses[str(status)] = {
                    "description": text,
                    "content": {mt: ({"schema": s} if s is not None else {}) for mt, s in media.items()},
                }
            responses.update(_error_responses(ref, responses))
            route = routes.get(key)
            security = route_security(route) if route is not None else "none"
            if security == "required":
                op["security"] = _SECURED
            elif security == "optional":
                op["security"] = [{}, *_SECURED]
    return spec


def install_openapi(app: FastAPI, ctx: Any) -> None:
    """Make ``app.openapi()`` return (and cache) the corrected document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, ctx)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# ---------------------------------------------------------------- /docs and /redoc without a CDN

DOCS_ASSETS = "/docs/assets"


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve Swagger UI at ``docs_url`` and ReDoc at ``redoc_url`` with assets from this server."""
    static = files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(static)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    def _root(request: Request) -> str:
        return str(request.scope.get("root_path", ""))

    async def swagger(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - API reference",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    handlers: list[tuple[str, Callable[[Request], Any]]] = [(docs_url, swagger), (redoc_url, redoc)]
    for url, handler in handlers:
        app.add_api_route(url, handler, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
