"""Flow files: YAML (or JSON) documents holding one flow definition, optionally with its agents.

A file is an AI Spine flow definition (``flow_id``, ``nodes``, ...) plus an optional top-level
``agents:`` list registered (upserted) before the flow is validated, so a file is self-contained.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml

from portside.server.agents.service import AgentService, AgentSpec
from portside.server.errors import DomainError, InvalidInput
from portside.server.flows.service import FlowService

log = logging.getLogger("portside.flows.loader")
SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 2 * 1024 * 1024


def agent_spec(raw: Any) -> AgentSpec:
    """An agent from a file or an AI Spine request: ``agent_id``/``agent_type`` are accepted as aliases."""
    if not isinstance(raw, dict):
        raise InvalidInput("each agent must be an object", code="invalid_agent")
    data = dict(raw)
    if "agent_id" in data:
        data.setdefault("id", data.pop("agent_id"))
    if "agent_type" in data:
        data.setdefault("type", data.pop("agent_type"))
    if "worker_capability" in data:
        data.setdefault("capability", data.pop("worker_capability"))
    data.setdefault("name", data.get("id") or "")
    try:
        return AgentSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        issues = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        raise InvalidInput(
            f"invalid agent: {issues[0]['field']}: {issues[0]['message']}",
            code="invalid_agent",
            details={"errors": issues},
        ) from None


def parse_flow_document(text: str, name: str = "<flow>") -> tuple[dict[str, Any], list[AgentSpec]]:
    """(flow definition, agents) from a YAML or JSON document."""
    try:
        doc = yaml.safe_load(text) if not name.endswith(".json") else json.loads(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise InvalidInput(f"{name}: not valid YAML/JSON: {exc}", code="invalid_flow_file") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{name}: a flow file must hold a mapping", code="invalid_flow_file")
    agents_raw = doc.pop("agents", None) or []
    if not isinstance(agents_raw, list):
        raise InvalidInput(f"{name}: 'agents' must be a list", code="invalid_flow_file")
    agents = [agent_spec(a) for a in agents_raw]
    for spec in agents:
        if not spec.id:
            raise InvalidInput(f"{name}: every agent in a flow file needs an 'id'", code="invalid_flow_file")
    return doc, agents


@dataclass
class LoadReport:
    """What loading a directory did."""

    loaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def _read(path: Path) -> str:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InvalidInput(f"{path.name}: larger than {MAX_FILE_BYTES} bytes", code="invalid_flow_file")
    return path.read_text(encoding="utf-8")


def _list(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())


async def load_text(
    text: str, name: str, flows: FlowService, agents: AgentService, *, created_by: str = "admin"
) -> bool:
    """Register a document's agents and upsert its flow; True when a new version was saved."""
    definition, specs = parse_flow_document(text, name)
    for spec in specs:
        await agents.upsert(spec, created_by=created_by)
    _, changed = await flows.save(definition, created_by=created_by, source=f"file:{name}", mode="upsert")
    return changed


async def load_file(path: Path, flows: FlowService, agents: AgentService, *, created_by: str = "admin") -> bool:
    """Register a file's agents and upsert its flow; True when a new version was saved."""
    text = await asyncio.to_thread(_read, path)
    return await load_text(text, path.name, flows, agents, created_by=created_by)


async def load_directory(directory: Path, flows: FlowService, agents: AgentService) -> LoadReport:
    """Load every flow file of ``directory`` (sorted by name); bad files are reported, not fatal."""
    report = LoadReport()
    for path in await asyncio.to_thread(_list, directory):
        try:
            changed = await load_file(path, flows, agents)
        except DomainError as exc:
            report.errors.append({"file": path.name, "message": exc.message, "details": exc.details})
            log.warning("flow file %s rejected: %s", path, exc.message)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            report.errors.append({"file": path.name, "message": str(exc), "details": {}})
            continue
        (report.loaded if changed else report.unchanged).append(path.name)
    return report
