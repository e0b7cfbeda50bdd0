"""Symbiont-style agent definitions: created from the SDK's ``Agent`` fields or compiled from the DSL."""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from portside.server.auth import Principal
from portside.server.clock import utcnow
from portside.server.deployments.tables import SymbiontAgentRow
from portside.server.dsl import CompileResult, check_dsl, parse_program
from portside.server.dsl.errors import DslError
from portside.server.errors import Conflict, InvalidInput, NotFound
from portside.server.ids import new_id
from portside.server.store import Database

AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TEXT_LIMITS = {"name": 300, "description": 10_000, "system_prompt": 100_000, "model": 200}


def _visible(caller: Principal, row: SymbiontAgentRow) -> bool:
    return caller.has("admin") or caller.owner == row.owner


def check_agent_id(agent_id: str) -> str:
    if not isinstance(agent_id, str) or not AGENT_ID.match(agent_id):
        raise InvalidInput(
            "agent id must be 1-128 characters of letters, digits, '.', '_' or '-' (starting with a letter or digit)",
            code="invalid_agent_id",
            details={"agent_id": str(agent_id)[:200]},
        )
    return agent_id


def _fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, limit in _TEXT_LIMITS.items():
        value = spec.get(key, "")
        if not isinstance(value, str) or len(value) > limit:
            raise InvalidInput(f"{key} must be a string of at most {limit} characters", details={"field": key})
        out[key] = value
    if not out["name"].strip():
        raise InvalidInput("name must not be empty", details={"field": "name"})
    tools = spec.get("tools", [])
    if not isinstance(tools, list) or len(tools) > 500 or not all(isinstance(t, str) and t for t in tools):
        raise InvalidInput("tools must be a list of at most 500 non-empty strings", details={"field": "tools"})
    out["tools"] = list(tools)
    for key, low, high, default in (("temperature", 0.0, 2.0, 0.0), ("top_p", 0.0, 1.0, 1.0)):
        value = spec.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= float(value) <= high:
            raise InvalidInput(f"{key} must be a number between {low} and {high}", details={"field": key})
        out[key] = float(value)
    max_tokens = spec.get("max_tokens", 0)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 0 <= max_tokens <= 10_000_000:
        raise InvalidInput("max_tokens must be a non-negative integer", details={"field": "max_tokens"})
    out["max_tokens"] = max_tokens
    return out


def agent_document(row: SymbiontAgentRow) -> dict[str, Any]:
    """What a deployed runtime receives as ``agent.json``."""
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "system_prompt": row.system_prompt,
        "tools": list(row.tools or []),
        "model": row.model,
        "temperature": row.temperature,
        "top_p": row.top_p,
        "max_tokens": row.max_tokens,
        "origin": row.origin,
        "version": row.version,
        "definition": row.definition or {},
    }


class AgentRegistry:
    """Create, compile, read and list Symbiont agents. Ids are global; each agent has an owner."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _upsert(self, caller: Principal, agent_id: str, values: dict[str, Any]) -> SymbiontAgentRow:
        async with self.db.transaction() as s:
            row = await s.get(SymbiontAgentRow, agent_id)
            if row is None:
                row = SymbiontAgentRow(id=agent_id, owner=caller.owner, version=1, **values)
                s.add(row)
                return row
            if not _visible(caller, row):
                raise Conflict(f"agent id '{agent_id}' is taken", code="agent_exists", details={"agent_id": agent_id})
            for key, value in values.items():
                setattr(row, key, value)
            row.version = (row.version or 1) + 1
            row.updated_at = utcnow()
        return row

    async def create(self, caller: Principal, spec: Mapping[str, Any]) -> SymbiontAgentRow:
        """Create or update (same owner) an agent from the SDK ``Agent`` fields."""
        agent_id = check_agent_id(str(spec.get("id") or "")) if spec.get("id") else new_id("agt")
        values = _fields(spec)
        values.update(origin="api", dsl_source=None, definition=None)
        return await self._upsert(caller, agent_id, values)

    async def compile(
        self, caller: Principal, source: str, agent_name: str | None = None, *, validate_only: bool = False
    ) -> tuple[CompileResult, SymbiontAgentRow | None]:
        """Compile DSL; unless ``validate_only``, store the agent (id = ``agent_name`` when usable).

        ``agent_name`` picks the agent block of that name; when the file has exactly one agent with
        another name, that one is compiled and ``agent_name`` is only used as the id.
        """
        if not isinstance(source, str):
            raise InvalidInput("dsl_content must be a string")
        chosen = agent_name or None
        try:
            names = [a.name for a in parse_program(source).agents]
        except DslError:
            names = []
        if chosen is not None and chosen not in names and len(names) == 1:
            chosen = None
        result = check_dsl(source, agent_name=chosen)
        if not result.success or result.agent is None or validate_only:
            return result, None
        definition = result.agent
        agent_id = agent_name if agent_name and AGENT_ID.match(agent_name) else definition.name
        if not AGENT_ID.match(agent_id):
            agent_id = new_id("agt")
        async with self.db.session() as s:
            existing = await s.get(SymbiontAgentRow, agent_id)
        if existing is not None and not _visible(caller, existing):
            agent_id = new_id("agt")
        values = {
            "name": definition.name,
            "description": definition.description or "",
            "system_prompt": "",
            "tools": list(definition.capabilities),
            "model": "",
            "temperature": 0.0,
            "top_p": 1.0,
            "max_tokens": 0,
            "origin": "dsl",
            "dsl_source": source,
            "definition": definition.model_dump(mode="json"),
        }
        return result, await self._upsert(caller, agent_id, values)

    async def get(self, caller: Principal, agent_id: str) -> SymbiontAgentRow:
        async with self.db.session() as s:
            row = await s.get(SymbiontAgentRow, agent_id)
        if row is None or not _visible(caller, row):
            raise NotFound(f"agent {agent_id} not found", code="agent_not_found", details={"agent_id": agent_id})
        return row

    async def list(self, caller: Principal) -> builtins.list[SymbiontAgentRow]:
        stmt = select(SymbiontAgentRow).order_by(SymbiontAgentRow.created_at, SymbiontAgentRow.id)
        if not caller.has("admin"):
            stmt = stmt.where(SymbiontAgentRow.owner == caller.owner)
        async with self.db.session() as s:
            return list((await s.execute(stmt)).scalars())

    async def delete(self, caller: Principal, agent_id: str) -> None:
        async with self.db.transaction() as s:
            row = await s.get(SymbiontAgentRow, agent_id)
            if row is None or not _visible(caller, row):
                raise NotFound(f"agent {agent_id} not found", code="agent_not_found", details={"agent_id": agent_id})
            await s.delete(row)

    async def counts(self) -> int:
        async with self.db.session() as s:
            return len(list((await s.execute(select(SymbiontAgentRow.id))).scalars()))
