"""Issue 21: ``/openapi.json`` is a contract that real clients nobody here wrote can use.

- openapi-spec-validator accepts it;
- no operation documents FastAPI's 422: validation errors are the real 400 with the door's error body,
  and the common errors are documented with it (a real 400 and a real 404 match their schema);
- bearer and X-API-Key security schemes, on every operation that authenticates;
- component (schema) names are unique and readable (no ``__`` module paths, no ``-Output``);
- operation ids are unique, readable ``<area>_<action>`` names;
- every operation documents a typed 2xx reply, except the streaming, binary and text ones, which are
  declared with their real media types;
- openapi-python-client generates a client from it without skipping any operation;
- ``/docs`` and ``/redoc`` load every asset from this server (no CDN);
- the server's sandbox wire models and the SDK's ``portside.types`` agree field by field.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate
from pydantic import BaseModel

from portside.server.app import create_app
from portside.server.http.openapi import MEDIA
from portside.server.sandboxes import schemas as server_schemas
from portside.types import sandboxes as sdk_sandboxes
from tests.conftest import ADMIN_KEY, make_settings

REPO = Path(__file__).resolve().parents[2]

#: The native routes whose typed replies this issue's api1 part owns (checked strictly).
OWNED = (
    "/v1/health",
    "/v1/ready",
    "/v1/keys",
    "/v1/profiles",
    "/v1/sandboxes",
    "/v1/cargos",
    "/v1/skills",
    "/v1/tasks",
    "/v1/workers",
    "/v1/capabilities",
    "/v1/admin",
)


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = create_app(make_settings(tmp_path_factory.mktemp("openapi") / "data"))
    document: dict[str, Any] = app.openapi()
    return document


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "responses" in op:
                yield method.upper(), path, op


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _untyped(spec: dict[str, Any], schema: dict[str, Any] | None) -> bool:
    """True for a reply schema that says nothing: missing, ``{}``, or a bare object/array of anything."""
    if not schema:
        return True
    schema = _resolve(spec, schema)
    if "anyOf" in schema:
        return all(_untyped(spec, s) for s in schema["anyOf"] if s.get("type") != "null")
    if schema.get("type") == "array":
        return _untyped(spec, schema.get("items"))
    if schema.get("type") == "object" or "additionalProperties" in schema:
        extra = schema.get("additionalProperties")
        return not schema.get("properties") and (extra in (None, True) or _untyped(spec, extra))
    return not schema.get("type") and not schema.get("enum") and "const" not in schema


def untyped_operations(spec: dict[str, Any]) -> list[str]:
    """Operations whose 2xx reply is undocumented or ``Any`` (streaming/binary/text ones excepted)."""
    offenders = []
    for method, path, op in operations(spec):
        if (method, path) in MEDIA:
            continue
        for status, response in op["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            content = response.get("content", {}).get("application/json")
            if content is None or _untyped(spec, content.get("schema")):
                offenders.append(f"{method} {path} -> {status}")
    return offenders


# ---------------------------------------------------------------- the document


def test_spec_validates(spec: dict[str, Any]) -> None:
    validate(spec)
    options = spec["paths"]["/hooks/{input_id}/{subpath}"]["options"]
    assert {p["name"] for p in options["parameters"]} == {"input_id", "subpath"}


def test_component_names_are_unique_and_readable(spec: dict[str, Any]) -> None:
    """Two models with one class name get module-path names (``portside__server__...__ExecutionList``)
    or ``-Input``/``-Output`` suffixes from FastAPI, and clients that name classes by a schema's
    ``title`` (openapi-python-client) then drop every response that references them."""
    schemas: dict[str, Any] = spec["components"]["schemas"]
    unreadable = [name for name in schemas if "__" in name or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name)]
    assert not unreadable, unreadable
    titles = [schema.get("title", name) for name, schema in schemas.items()]
    assert len(titles) == len(set(titles)), sorted({t for t in titles if titles.count(t) > 1})
    referenced = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert referenced <= set(schemas), sorted(referenced - set(schemas))


def test_no_422_and_the_real_error_bodies(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"ErrorBody", "ErrorDetail", "AiSpineErrorBody", "SymbiontErrorBody"} <= set(schemas)
    for method, path, op in operations(spec):
        responses = op["responses"]
        assert "422" not in responses, f"{method} {path}"
        for status in ("400", "401", "403", "404", "409", "413", "429", "500"):
            assert status in responses, f"{method} {path} does not document {status}"
        ref = responses["400"]["content"]["application/json"]["schema"]["$ref"]
        expected = "ErrorBody"
        if path.startswith("/api/v1/") and not path.startswith(("/api/v1/users", "/api/v1/user/")):
            expected = "SymbiontErrorBody"
        elif path.startswith(("/flows", "/executions", "/agents", "/health", "/metrics", "/status", "/api/v1/user")):
            expected = "ErrorBody" if path.startswith("/metrics/prometheus") else "AiSpineErrorBody"
        assert ref == f"#/components/schemas/{expected}", f"{method} {path}: {ref}"
    assert "Retry-After" in spec["paths"]["/v1/sandboxes"]["post"]["responses"]["429"]["headers"]


def test_status_codes_are_the_real_ones(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    assert set(paths["/v1/sandboxes/{sandbox_id}"]["delete"]["responses"]) & {"200", "204"} == {"204"}
    assert set(paths["/v1/cargos/{cargo_id}"]["delete"]["responses"]) & {"200", "204"} == {"204"}
    assert "200" in paths["/v1/sandboxes/{sandbox_id}/stop"]["post"]["responses"]
    assert "200" in paths["/v1/sandboxes/{sandbox_id}/filesystem/files"]["delete"]["responses"]
    assert "201" in paths["/v1/sandboxes"]["post"]["responses"]


def test_security_schemes(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKeyAuth"] == {**schemes["apiKeyAuth"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    paths = spec["paths"]
    assert paths["/v1/sandboxes"]["post"]["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}]
    assert paths["/v1/tasks"]["post"]["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}]
    assert paths["/neuron/register"]["post"]["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}]
    assert {} in paths["/v1/health"]["get"]["security"]  # open to anyone, more for key holders
    assert "security" not in paths["/hooks/{input_id}"]["post"]  # public webhooks
    secured = sum(1 for _, _, op in operations(spec) if op.get("security"))
    assert secured > 200


def test_operation_ids_are_unique_and_readable(spec: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(spec)]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    generated = [i for i in ids if not re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", i) or re.search(r"_v1_|__", i)]
    assert not generated, generated
    by_route = {(m, p): op["operationId"] for m, p, op in operations(spec)}
    assert by_route[("POST", "/v1/sandboxes")] == "sandboxes_create"
    assert by_route[("GET", "/v1/sandboxes")] == "sandboxes_list"
    assert by_route[("GET", "/v1/sandboxes/{sandbox_id}")] == "sandboxes_get"
    assert by_route[("DELETE", "/v1/sandboxes/{sandbox_id}")] == "sandboxes_delete"
    assert by_route[("POST", "/v1/sandboxes/{sandbox_id}/python/exec")] == "sandboxes_exec_python"
    assert by_route[("POST", "/v1/sandboxes/{sandbox_id}/filesystem/upload")] == "files_upload"
    assert by_route[("GET", "/v1/sandboxes/{sandbox_id}/history")] == "history_list"
    assert by_route[("POST", "/v1/cargos")] == "cargos_create"
    assert by_route[("GET", "/v1/profiles")] == "profiles_list"
    assert by_route[("POST", "/v1/tasks")] == "tasks_submit"
    assert by_route[("POST", "/v1/tasks/batch")] == "tasks_submit_batch"
    assert by_route[("POST", "/v1/keys")] == "keys_create"
    assert by_route[("POST", "/v1/admin/gc")] == "admin_run_gc"


def test_streaming_binary_and_multipart_routes(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    download = paths["/v1/sandboxes/{sandbox_id}/filesystem/download"]["get"]["responses"]["200"]["content"]
    assert download == {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    for path in ("/v1/executions/{execution_id}/events", "/v1/workers/{worker_id}/events", "/neuron/events"):
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == ["text/event-stream"], path
    assert list(paths["/metrics/prometheus"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    upload = paths["/v1/sandboxes/{sandbox_id}/filesystem/upload"]["post"]["requestBody"]["content"]
    body = _resolve(spec, upload["multipart/form-data"]["schema"])
    assert (
        body["properties"]["file"].get("format") == "binary"
        or body["properties"]["file"].get("contentMediaType") == "application/octet-stream"
    )
    for method, path in MEDIA:
        assert path in paths and method.lower() in paths[path], f"MEDIA names a route that does not exist: {path}"


def test_owned_routes_have_typed_replies(spec: dict[str, Any]) -> None:
    offenders = [o for o in untyped_operations(spec) if o.split(" ")[1].startswith(OWNED)]
    assert not offenders, offenders


def test_every_route_has_a_typed_reply(spec: dict[str, Any]) -> None:
    offenders = untyped_operations(spec)
    assert not offenders, f"{len(offenders)} operations reply Any:\n" + "\n".join(offenders)


# ---------------------------------------------------------------- openapi-python-client


def _client_generator() -> list[str] | None:
    explicit = os.environ.get("PORTSIDE_OPENAPI_PYTHON_CLIENT")
    for candidate in (explicit, str(REPO / ".venv-tools/bin/openapi-python-client")):
        if candidate and Path(candidate).is_file():
            return [candidate]
    found = shutil.which("openapi-python-client")
    return [found] if found else None


@pytest.mark.timeout(600)
def test_openapi_python_client_generates_every_operation(spec: dict[str, Any], tmp_path: Path) -> None:
    command = _client_generator()
    if command is None:
        pytest.fail("openapi-python-client is not installed: `make test` installs it in .venv-tools")
    (tmp_path / "openapi.json").write_text(json.dumps(spec))
    out = tmp_path / "client"
    proc = subprocess.run(
        [*command, "generate", "--path", str(tmp_path / "openapi.json"), "--output-path", str(out), "--meta", "none"],
        capture_output=True,
        text=True,
        timeout=540,
        env={**os.environ, "PATH": f"{Path(command[0]).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
        cwd=tmp_path,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "Warning" not in log and "WARNING" not in log, log
    modules = {p.stem for p in out.rglob("api/*/*.py") if p.stem != "__init__"}
    ids = {op["operationId"] for _, _, op in operations(spec)}
    assert ids == modules, sorted(ids ^ modules)
    returns_any = []
    for module in out.rglob("api/*/*.py"):
        match = re.search(r"^def sync\(.*?\) -> (.*?):$", module.read_text(), re.S | re.M)
        if match and re.fullmatch(r"Any( \| None)?", match.group(1).strip()):
            returns_any.append(module.stem)
    owned = {op["operationId"] for m, p, op in operations(spec) if p.startswith(OWNED) and (m, p) not in MEDIA}
    assert not (set(returns_any) & owned), sorted(set(returns_any) & owned)


# ---------------------------------------------------------------- against the running app


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(make_settings(tmp_path / "data"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://portside.test", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as client:
            yield app, client


def _check(spec: dict[str, Any], method: str, path: str, response: httpx.Response) -> None:
    documented = spec["paths"][path][method.lower()]["responses"][str(response.status_code)]
    schema = documented["content"]["application/json"]["schema"]
    resolver_doc = {"components": spec["components"], **_resolve(spec, schema)}
    jsonschema.validate(response.json(), resolver_doc)


async def test_real_errors_match_the_documented_bodies(live: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, api = live
    spec = app.openapi()
    bad = await api.post("/v1/sandboxes/x/python/exec", json={"timeout": "soon"})
    assert bad.status_code == 400
    _check(spec, "POST", "/v1/sandboxes/{sandbox_id}/python/exec", bad)
    missing = await api.get("/v1/cargos/nope")
    assert missing.status_code == 404
    _check(spec, "GET", "/v1/cargos/{cargo_id}", missing)
    spine = await api.post("/flows/execute", json={"flow_id": 3})
    assert spine.status_code == 400
    _check(spec, "POST", "/flows/execute", spine)
    me = await api.get("/v1/keys/me")
    _check(spec, "GET", "/v1/keys/me", me)
    health = await api.get("/v1/health")
    _check(spec, "GET", "/v1/health", health)
    anonymous = await api.get("/v1/health", headers={"Authorization": ""})
    assert anonymous.json() == {"status": "ok"}
    profiles = await api.get("/v1/profiles")
    _check(spec, "GET", "/v1/profiles", profiles)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_their_assets_locally(live: tuple[FastAPI, httpx.AsyncClient], page: str) -> None:
    _, api = live
    html = await api.get(page, headers={"Authorization": ""})
    assert html.status_code == 200
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html.text), html.text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        got = await api.get(asset, headers={"Authorization": ""})
        assert got.status_code == 200 and len(got.content) > 100, asset
    assert (await api.get("/openapi.json", headers={"Authorization": ""})).status_code == 200


# ---------------------------------------------------------------- one wire, two declarations


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    out = {}
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "default", "description")}
        out[name] = json.dumps(prop, sort_keys=True)
    return out


PAIRS = [
    (server_schemas.SandboxInfo, sdk_sandboxes.SandboxInfo),
    (server_schemas.ContainerInfo, sdk_sandboxes.SandboxContainer),
    (server_schemas.CargoInfo, sdk_sandboxes.CargoInfo),
    (server_schemas.FileInfo, sdk_sandboxes.FileInfo),
    (server_schemas.PythonExecResult, sdk_sandboxes.PythonExecResult),
    (server_schemas.ShellExecResult, sdk_sandboxes.ShellExecResult),
    (server_schemas.ExecutionEntry, sdk_sandboxes.Execution),
    (server_schemas.ExecutionList, sdk_sandboxes.ExecutionList),
]


@pytest.mark.parametrize(("server", "sdk"), PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_server_and_sdk_models_agree(server: type[BaseModel], sdk: type[BaseModel]) -> None:
    """Same field names, same JSON types (nested models compared by their own pair); the SDK may also
    accept null where the server always sends a value."""
    theirs, ours = _fields(server), _fields(sdk)
    assert set(theirs) == set(ours)
    for name in theirs:
        a = re.sub(r'"\$ref": "#/\$defs/\w+"', '"$ref": "MODEL"', theirs[name])
        b = re.sub(r'"\$ref": "#/\$defs/\w+"', '"$ref": "MODEL"', ours[name])
        lenient = json.dumps({"anyOf": [json.loads(a), {"type": "null"}]}, sort_keys=True)
        assert b in (a, lenient), f"{server.__name__}.{name}: server {a} != sdk {b}"


async def test_a_scalar_query_parameter_given_twice_is_400(live: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """The document says ``agent_id`` is one value; FastAPI would silently keep the last of several."""
    _, api = live
    for path in ("/v1/agent-deployments", "/api/v1/agents/deployments"):
        twice = await api.get(path, params=[("agent_id", "a"), ("agent_id", "b")])
        assert twice.status_code == 400, (path, twice.text)
        assert "agent_id" in twice.text
        assert (await api.get(path, params={"agent_id": "a"})).status_code == 200
    listed = await api.get("/v1/tasks", params=[("limit", "5")])
    assert listed.status_code == 200


def test_request_schemas_state_the_service_rules(spec: dict[str, Any]) -> None:
    """Rules a service checks with its own code are in the request schema (schemathesis'
    positive_data_acceptance holds, tests/security/test_fuzz_api.py): a few samples."""
    schemas = spec["components"]["schemas"]
    paths = spec["paths"]
    secret = paths["/v1/secrets/{agent_id}"]["get"]["parameters"][0]["schema"]
    assert secret["pattern"].startswith("^[A-Za-z0-9]")
    status = paths["/v1/reviews"]["get"]["parameters"][0]["schema"]["anyOf"][0]
    assert "approved" in status["enum"]
    assert schemas["TaskCreate"]["properties"]["max_attempts"]["maximum"] == 100
    assert "anyOf" in schemas["InputSpec"] and "anyOf" in schemas["ServerSpec"]
    # free-form request values are JSON values whose integers fit in 64 bits
    assert schemas["JsonValue"]["not"]["type"] == "integer"
    assert schemas["PythonExec"]["additionalProperties"] == {"$ref": "#/components/schemas/JsonValue"}
