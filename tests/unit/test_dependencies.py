"""Every imported third-party module is declared, every declared dependency is used, and the SDK
imports only the base dependencies.

Issue 21: ``sse-starlette`` was declared but never imported, and ``jwt``, ``httpx2``, ``requests``,
``mcp_types`` and ``anyio`` were imported without being declared. deptry (configured under
``[tool.deptry]`` in pyproject.toml) checks src/ against the project's dependencies; deptry cannot
tell the base dependencies from the ``server`` extra, so the SDK half is checked here by AST and by
importing the SDK with every other third-party module blocked.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "portside"
SERVER_SIDE = {"server", "cli"}  # portside.server / portside.cli need the ``server`` extra
# SDK imports of optional packages, each guarded by ``except ImportError`` where it is used
OPTIONAL_SDK_IMPORTS = {
    "jsonschema": "worker.py",  # client-side schema check, skipped if absent
    "opentelemetry": "_tracing.py",  # the worker joins the caller's trace when opentelemetry-api is installed
}
SDK_MODULES = ["portside", "portside.worker", "portside._async", "portside._sync", "portside.types", "portside.errors"]


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _dist_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _base() -> set[str]:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    return {_norm(_dist_name(r)) for r in project["dependencies"]}


def _closure(names: set[str]) -> set[str]:
    """``names`` and everything they require (extras excluded), as installed."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        todo.extend(_norm(_dist_name(r)) for r in reqs if "extra" not in r.partition(";")[2])
    return seen


def modules_of(dists: set[str]) -> set[str]:
    """Top-level modules the installed distributions ``dists`` provide."""
    provided = {mod for mod, owners in packages_distributions().items() if any(_norm(d) in dists for d in owners)}
    assert provided, f"not installed: {sorted(dists)}"
    return provided


def sdk_files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in SERVER_SIDE]


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every absolute import in ``path``, at any depth."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def test_deptry_finds_no_undeclared_unused_or_transitive_imports() -> None:
    run = subprocess.run([sys.executable, "-m", "deptry", "src"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_sdk_base_dependencies_stay_light() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert sorted(_norm(_dist_name(r)) for r in project["dependencies"]) == ["httpx", "httpx-sse", "pydantic"]


def test_sdk_imports_only_base_dependencies() -> None:
    allowed = modules_of(_base()) | {"portside"} | set(sys.stdlib_module_names)
    bad: list[str] = []
    for path in sdk_files():
        rel = path.relative_to(PACKAGE.parent)
        for line, module in imports_of(path):
            top = module.split(".")[0]
            if module.split(".")[:2] in (["portside", part] for part in SERVER_SIDE):
                bad.append(f"{rel}:{line}: SDK imports server-side {module}")
            elif top not in allowed and OPTIONAL_SDK_IMPORTS.get(top) != path.name:
                bad.append(f"{rel}:{line}: SDK imports {module}, not a base dependency")
    assert not bad, "\n".join(bad)


def test_sdk_imports_with_only_base_dependencies_installed() -> None:
    """Import the whole SDK with every third-party module blocked except the base dependencies and
    what they themselves require."""
    allowed = modules_of(_closure(_base())) | {"portside"}
    blocked = sorted(set(packages_distributions()) - allowed)  # every other installed top-level module
    script = f"""
import sys, importlib, importlib.abc
BLOCKED = set({blocked!r})
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked: {{name}} is not a base dependency")
        return None
for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]
sys.meta_path.insert(0, Block())
for module in {SDK_MODULES!r}:
    importlib.import_module(module)
import portside
assert portside.Client and portside.AsyncClient and portside.Worker
"""
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(PACKAGE.parent), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
