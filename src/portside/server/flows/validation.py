"""Checks a flow definition before it is saved: shape, DAG, references, expressions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pydantic

from portside.server.errors import InvalidInput
from portside.server.flows.expr import ExpressionError, compile_expression, template_expressions
from portside.server.flows.schema import AGENT_KINDS, FlowDefinition, NodeSpec, _NodeFields

Issue = dict[str, Any]
#: Given agent ids, returns the ones that exist.
AgentLookup = Callable[[set[str]], Awaitable[set[str]]]


def parse_definition(raw: Any) -> FlowDefinition:
    """Parse a definition; every shape problem is reported in ``details.errors``."""
    if not isinstance(raw, dict):
        raise InvalidInput("a flow definition must be a JSON object", code="invalid_flow")
    try:
        return FlowDefinition.model_validate(raw)
    except pydantic.ValidationError as exc:
        issues = [
            {
                "code": "invalid_field",
                "field": ".".join(str(p) for p in err["loc"]),
                "message": err["msg"],
            }
            for err in exc.errors()
        ]
        raise _invalid(issues) from None


def _invalid(issues: list[Issue]) -> InvalidInput:
    first = issues[0]["message"] if issues else "invalid flow"
    more = f" (and {len(issues) - 1} more problem(s))" if len(issues) > 1 else ""
    return InvalidInput(f"invalid flow: {first}{more}", code="invalid_flow", details={"errors": issues})


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in ``node -> dependencies`` as a path, or None (iterative DFS)."""
    state: dict[str, int] = {}
    for start in edges:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            deps = edges.get(node, [])
            if i < len(deps):
                stack.append((node, i + 1))
                dep = deps[i]
                if state.get(dep) == 1:
                    return [*path[path.index(dep) :], dep]
                if not state.get(dep) and dep in edges:
                    stack.append((dep, 0))
            else:
                state[node] = 2
                path.pop()
    return None


def _expr_issue(node_id: str, field: str, source: str) -> Issue | None:
    try:
        compile_expression(source)
    except ExpressionError as exc:
        return {"code": "invalid_expression", "node": node_id, "field": field, "message": f"{field}: {exc}"}
    return None


def _kind_issues(node_id: str, node: _NodeFields, prefix: str = "") -> Iterable[Issue]:
    kind = node.type
    where = f"node '{node_id}'"

    def need(field: str, what: str) -> Issue:
        return {
            "code": "missing_field",
            "node": node_id,
            "field": prefix + field,
            "message": f"{where} of type '{kind}' needs '{field}' ({what})",
        }

    if kind in AGENT_KINDS and not node.agent_id:
        yield need("agent_id", "the agent to call")
    if kind == "task" and not node.capability and not node.agent_id:
        yield need("capability", "the worker capability to run")
    if kind == "python" and not node.code:
        yield need("code", "the Python code to run in a sandbox")
    if kind == "skill" and not node.skill:
        yield need("skill", "the skill key, or 'key@stage'")
    if kind == "condition" and not node.expression:
        yield need("expression", "a boolean expression")
    if kind == "map":
        yield {"code": "invalid_field", "node": node_id, "field": prefix + "type", "message": "maps cannot nest"}
    if node.expression:
        issue = _expr_issue(node_id, prefix + "expression", node.expression)
        if issue:
            yield issue
    for source in template_expressions(node.input or {}):
        issue = _expr_issue(node_id, prefix + "input", source)
        if issue:
            yield issue


def structural_issues(flow: FlowDefinition) -> list[Issue]:
    """Problems that need nothing but the definition."""
    issues: list[Issue] = []
    ids: set[str] = set()
    for node in flow.nodes:
        if node.id in ids:
            issues.append({"code": "duplicate_node", "node": node.id, "message": f"node id '{node.id}' is used twice"})
        ids.add(node.id)
    for node in flow.nodes:
        for dep in node.depends_on:
            if dep == node.id:
                issues.append(
                    {"code": "self_dependency", "node": node.id, "message": f"node '{node.id}' depends on itself"}
                )
            elif dep not in ids:
                issues.append(
                    {
                        "code": "unknown_dependency",
                        "node": node.id,
                        "dependency": dep,
                        "message": f"node '{node.id}' depends on '{dep}', which is not a node of this flow",
                    }
                )
        if len(set(node.depends_on)) != len(node.depends_on):
            issues.append(
                {
                    "code": "duplicate_dependency",
                    "node": node.id,
                    "message": f"node '{node.id}' lists a dependency twice",
                }
            )
        issues.extend(_node_issues(node))
    edges = {n.id: [d for d in n.depends_on if d in ids and d != n.id] for n in flow.nodes}
    cycle = find_cycle(edges)
    if cycle:
        pretty = " -> ".join(reversed(cycle))
        issues.append({"code": "cycle", "nodes": list(reversed(cycle)), "message": f"the flow has a cycle: {pretty}"})
    if flow.entry_point is not None and flow.entry_point not in ids:
        issues.append(
            {
                "code": "unknown_entry_point",
                "field": "entry_point",
                "message": f"entry_point '{flow.entry_point}' is not a node",
            }
        )
    for exit_point in flow.exit_points:
        if exit_point not in ids:
            issues.append(
                {
                    "code": "unknown_exit_point",
                    "field": "exit_points",
                    "message": f"exit point '{exit_point}' is not a node",
                }
            )
    return issues


def _node_issues(node: NodeSpec) -> Iterable[Issue]:
    if node.type == "map":
        if node.map is None:
            yield {
                "code": "missing_field",
                "node": node.id,
                "field": "map",
                "message": f"node '{node.id}' of type 'map' needs 'map' (items and node)",
            }
        else:
            issue = _expr_issue(node.id, "map.items", node.map.items)
            if issue:
                yield issue
            yield from _kind_issues(node.id, node.map.node, "map.node.")
    else:
        if node.map is not None:
            yield {"code": "invalid_field", "node": node.id, "field": "map", "message": "'map' is only for type 'map'"}
        yield from _kind_issues(node.id, node)
    if node.when:
        issue = _expr_issue(node.id, "when", node.when)
        if issue:
            yield issue


def referenced_agents(flow: FlowDefinition) -> dict[str, list[str]]:
    """agent id -> the nodes that use it."""
    out: dict[str, list[str]] = {}
    for node in flow.nodes:
        for inner in (node, node.map.node if node.map else None):
            if inner is not None and inner.agent_id:
                out.setdefault(inner.agent_id, []).append(node.id)
    return out


async def validate_flow(raw: Any, agents_exist: AgentLookup) -> FlowDefinition:
    """Parse and check a definition; raise InvalidInput (400) listing every problem found."""
    flow = parse_definition(raw)
    issues = structural_issues(flow)
    refs = referenced_agents(flow)
    if refs:
        known = await agents_exist(set(refs))
        for agent_id in sorted(set(refs) - known):
            for node_id in refs[agent_id]:
                issues.append(
                    {
                        "code": "unknown_agent",
                        "node": node_id,
                        "agent_id": agent_id,
                        "message": f"node '{node_id}' uses agent '{agent_id}', which is not registered",
                    }
                )
    if issues:
        raise _invalid(issues)
    return flow
