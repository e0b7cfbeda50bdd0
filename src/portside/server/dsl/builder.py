"""Turn the Lark parse tree into the typed :class:`DslProgram` model."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from lark import Token, Tree

from portside.server.dsl.errors import DslValidationError
from portside.server.dsl.model import (
    AgentSyntax,
    Channel,
    DslProgram,
    FunctionDef,
    MemoryStore,
    Node,
    Param,
    Policy,
    PolicyRule,
    SandboxTier,
    Schedule,
    Span,
    TypeDef,
    Webhook,
    WithBlock,
)

Child = Tree[Token] | Token | None

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", '"': '"', "\\": "\\", "'": "'", "/": "/"}
_ESCAPE_RE = re.compile(r"\\(u\{[0-9a-fA-F]{1,6}\}|u[0-9a-fA-F]{4}|.)", re.S)
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(\.seconds|\.minutes|\.hours|months|ms|s|m|h|d|w|y)?\s*$")
_UNIT_SECONDS = {
    None: 1.0,
    "ms": 0.001,
    "s": 1.0,
    ".seconds": 1.0,
    "m": 60.0,
    ".minutes": 60.0,
    "h": 3600.0,
    ".hours": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "months": 2592000.0,
    "y": 31536000.0,
}
_SANDBOX_TIERS: dict[str, SandboxTier] = {
    "docker": "docker",
    "tier1": "docker",
    "gvisor": "gvisor",
    "tier2": "gvisor",
    "firecracker": "firecracker",
    "tier3": "firecracker",
    "e2b": "e2b",
}


MAX_NESTING = 64
"""Deepest nesting of expressions and blocks accepted (keeps the JSON tree serialisable)."""


class _Constant(Exception):
    """Internal: the expression is not a constant."""


def unescape(literal: str) -> str:
    """The text of a ``"..."`` string token (``\\n``, ``\\"``, ``\\u00e9``; unknown escapes kept as written)."""

    def repl(m: re.Match[str]) -> str:
        body = m.group(1)
        if body.startswith("u{"):
            return chr(int(body[2:-1], 16))
        if body.startswith("u") and len(body) == 5:
            return chr(int(body[1:], 16))
        return _ESCAPES.get(body, "\\" + body)

    return _ESCAPE_RE.sub(repl, literal[1:-1])


def duration_seconds(text: str) -> float | None:
    """Seconds in ``30s``, ``5m``, ``60.seconds``, ``"2h"``, ``7d``; a bare number counts as seconds."""
    m = _DURATION_RE.match(text.strip('"'))
    if not m:
        return None
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


class Builder:
    """Walks one parse tree; keeps the source to slice exact text for spans."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.depth = 0

    def nested(self, node: Tree[Token]) -> None:
        """Count one level of nesting at ``node``; raise past :data:`MAX_NESTING`."""
        if self.depth >= MAX_NESTING:
            raise self.invalid(node, f"expressions and blocks are nested more than {MAX_NESTING} levels deep")

    # ------------------------------------------------------------ helpers
    @staticmethod
    def span(node: Tree[Token] | Token) -> Span:
        if isinstance(node, Token):
            return Span(
                line=node.line or 1,
                column=node.column or 1,
                end_line=node.end_line or 1,
                end_column=node.end_column or 1,
            )
        meta = node.meta
        return Span(line=meta.line, column=meta.column, end_line=meta.end_line, end_column=meta.end_column)

    def text(self, node: Tree[Token] | Token) -> str:
        if isinstance(node, Token):
            return str(node)
        return self.source[node.meta.start_pos : node.meta.end_pos]

    @staticmethod
    def tree(node: Child) -> Tree[Token]:
        assert isinstance(node, Tree), node
        return node

    @staticmethod
    def tok(node: Child) -> str:
        assert isinstance(node, Token), node
        return str(node)

    def type_text(self, node: Tree[Token]) -> str:
        name, *args = node.children
        rendered = [self.type_text(self.tree(a)) for a in args if a is not None]
        return f"{self.tok(name)}<{', '.join(rendered)}>" if rendered else self.tok(name)

    def params(self, node: Child) -> list[Param]:
        if node is None:
            return []
        return [self.param(self.tree(p)) for p in self.tree(node).children]

    def param(self, node: Tree[Token]) -> Param:
        name, type_ = node.children
        return Param(name=self.tok(name), type=self.type_text(self.tree(type_)))

    # ------------------------------------------------------------ values
    def literal(self, node: Tree[Token]) -> Any:
        """Python value of a constant expression; raises ``_Constant`` otherwise."""
        kind = node.data
        if kind in ("string", "number", "duration", "true", "false", "name", "vault"):
            return self.expr(node)["value"] if kind != "name" else self.expr(node)["name"]
        if kind not in ("array", "record"):
            raise _Constant
        self.nested(node)
        self.depth += 1
        try:
            if kind == "array":
                return [self.literal(self.tree(c)) for c in node.children if c is not None]
            return {self.field_key(f): self.literal(self.tree(self.tree(f).children[1])) for f in node.children}
        finally:
            self.depth -= 1

    def value(self, node: Child) -> Any:
        """A property value: the constant as Python data, else its source text."""
        tree = self.tree(node)
        try:
            return self.literal(tree)
        except _Constant:
            return self.text(tree)

    def field_key(self, field: Child) -> str:
        key = self.tree(field).children[0]
        assert isinstance(key, Token)
        return unescape(str(key)) if key.type == "STRING" else str(key)

    # ------------------------------------------------------------ expressions
    def expr(self, node: Child) -> Node:
        tree = self.tree(node)
        self.nested(tree)
        self.depth += 1
        try:
            return self._expr(tree)
        finally:
            self.depth -= 1

    def _expr(self, tree: Tree[Token]) -> Node:
        kind = str(tree.data)
        c = tree.children
        if kind == "string":
            return {"kind": "string", "value": unescape(self.tok(c[0]))}
        if kind == "number":
            raw = self.tok(c[0]).replace("_", "")
            return {"kind": "number", "value": float(raw) if "." in raw else int(raw)}
        if kind == "duration":
            raw = self.tok(c[0])
            return {"kind": "duration", "value": raw, "seconds": duration_seconds(raw)}
        if kind in ("true", "false"):
            return {"kind": "bool", "value": kind == "true"}
        if kind == "name":
            return {"kind": "name", "name": self.tok(c[0])}
        if kind == "vault":
            return {"kind": "vault", "value": self.tok(c[0])}
        if kind == "array":
            return {"kind": "array", "items": [self.expr(x) for x in c if x is not None]}
        if kind == "record":
            return {"kind": "record", "fields": [self.record_field(f) for f in c]}
        if kind == "struct_literal":
            return {"kind": "struct", "type": self.tok(c[0]), "fields": [self.record_field(f) for f in c[1:]]}
        if kind == "binary":
            left, op, right = c
            return {"kind": "binary", "op": self.op(op), "left": self.expr(left), "right": self.expr(right)}
        if kind == "unary":
            op, operand = c
            return {"kind": "unary", "op": self.op(op), "operand": self.expr(operand)}
        if kind == "member":
            return {"kind": "member", "object": self.expr(c[0]), "property": self.tok(c[1])}
        if kind == "index":
            return {"kind": "index", "object": self.expr(c[0]), "index": self.expr(c[1])}
        if kind == "call":
            return {
                "kind": "call",
                "callee": self.expr(c[0]),
                "args": [self.argument(a) for a in c[1:] if a is not None],
            }
        if kind == "lambda":
            return {"kind": "lambda", "param": self.tok(c[0]), "body": self.expr(c[1])}
        if kind == "if_expr":
            cond, then, other = c
            other_tree = self.tree(other)
            other_node = self.expr(other_tree) if other_tree.data == "if_expr" else self.block(other_tree)
            return {"kind": "if", "condition": self.expr(cond), "then": self.block(self.tree(then)), "else": other_node}
        raise AssertionError(f"unhandled expression node {kind}")  # pragma: no cover

    def op(self, node: Child) -> str:
        return self.tok(self.tree(node).children[0])

    def argument(self, node: Child) -> Node:
        tree = self.tree(node)
        if tree.data == "named_arg":
            name, value = tree.children
            return {"kind": "named_arg", "name": self.tok(name), "value": self.expr(value)}
        return self.expr(tree)

    def record_field(self, node: Child) -> Node:
        return {"key": self.field_key(node), "value": self.expr(self.tree(node).children[1])}

    # ------------------------------------------------------------ statements
    def block(self, node: Tree[Token]) -> Node:
        self.nested(node)
        self.depth += 1
        try:
            return self._block(node)
        finally:
            self.depth -= 1

    def _block(self, node: Tree[Token]) -> Node:
        *stmts, tail = node.children
        return {
            "kind": "block",
            "statements": [self.stmt(self.tree(s)) for s in stmts],
            "result": self.expr(tail) if tail is not None else None,
        }

    def stmt(self, node: Tree[Token]) -> Node:
        kind = str(node.data)
        c = node.children
        line = node.meta.line
        if kind == "let_stmt":
            name, type_, value = c
            type_text = self.type_text(self.tree(type_)) if type_ is not None else None
            return {"kind": "let", "name": self.tok(name), "type": type_text, "value": self.expr(value), "line": line}
        if kind == "assign_stmt":
            target, op, value = c
            return {
                "kind": "assign",
                "target": self.expr(target),
                "op": self.op(op),
                "value": self.expr(value),
                "line": line,
            }
        if kind == "expr_stmt":
            return {"kind": "expr", "expr": self.expr(c[0]), "line": line}
        if kind == "return_stmt":
            return {"kind": "return", "value": self.expr(c[0]) if c[0] is not None else None, "line": line}
        if kind == "if_stmt":
            cond, then, other = c
            cond_tree = self.tree(cond)
            out: Node = {"kind": "if", "line": line}
            if cond_tree.data == "if_let":
                pattern, value = cond_tree.children
                out["let"] = {"pattern": self.pattern(self.tree(pattern)), "value": self.expr(value)}
                out["condition"] = None
            else:
                out["condition"] = self.expr(cond_tree)
            out["then"] = self.block(self.tree(then))
            if other is None:
                out["else"] = None
            else:
                other_tree = self.tree(other)
                out["else"] = self.stmt(other_tree) if other_tree.data == "if_stmt" else self.block(other_tree)
            return out
        if kind == "for_stmt":
            var, iterable, body = c
            return {
                "kind": "for",
                "var": self.tok(var),
                "iterable": self.expr(iterable),
                "body": self.block(self.tree(body)),
                "line": line,
            }
        if kind == "match_stmt":
            subject, *arms = c
            return {
                "kind": "match",
                "subject": self.expr(subject),
                "arms": [self.arm(self.tree(a)) for a in arms],
                "line": line,
            }
        if kind == "try_stmt":
            body, *catches = c
            return {
                "kind": "try",
                "body": self.block(self.tree(body)),
                "catches": [self.catch(self.tree(x)) for x in catches],
                "line": line,
            }
        raise AssertionError(f"unhandled statement node {kind}")  # pragma: no cover

    def pattern(self, node: Tree[Token]) -> Node:
        name, *subs = node.children
        out: Node = {"name": self.tok(name)}
        if subs and subs != [None]:
            out["args"] = [self.pattern(self.tree(s)) for s in subs if s is not None]
        return out

    def arm(self, node: Tree[Token]) -> Node:
        pattern, result = node.children
        result_tree = self.tree(result)
        body = self.block(result_tree) if result_tree.data == "block" else self.expr(result_tree)
        return {"pattern": self.expr(pattern), "body": body}

    def catch(self, node: Tree[Token]) -> Node:
        first, second, body = node.children
        if second is None:
            return {"type": None, "name": self.tok(first), "body": self.block(self.tree(body))}
        return {"type": self.tok(first), "name": self.tok(second), "body": self.block(self.tree(body))}

    # ------------------------------------------------------------ definitions
    def policy(self, node: Tree[Token]) -> Policy:
        name, *rules = node.children
        return Policy(name=self.tok(name), rules=[self.rule(self.tree(r)) for r in rules], span=self.span(node))

    def rule(self, node: Tree[Token]) -> PolicyRule:
        kind, action, cond = node.children
        action_tree = self.tree(action)
        try:
            value = self.literal(action_tree)
        except _Constant:
            value = None
        cond_tree = self.tree(cond) if cond is not None else None
        return PolicyRule(
            effect=self.op(kind),
            actions=_action_names(self.expr(action_tree)),
            action=self.expr(action_tree),
            action_source=self.text(action_tree),
            value=value,
            condition=self.expr(cond_tree) if cond_tree is not None else None,
            condition_source=self.text(cond_tree) if cond_tree is not None else None,
            span=self.span(node),
        )

    def function(self, node: Tree[Token]) -> FunctionDef:
        name, params, ret, body = node.children
        body_tree = self.tree(body)
        return FunctionDef(
            name=self.tok(name),
            params=self.params(params),
            return_type=self.type_text(self.tree(ret)) if ret is not None else None,
            body=self.block(body_tree),
            body_source=self.text(body_tree),
            span=self.span(node),
        )

    def with_block(self, node: Tree[Token]) -> WithBlock:
        *attrs, body = node.children
        body_tree = self.tree(body)
        block = WithBlock(body=self.block(body_tree), body_source=self.text(body_tree), span=self.span(node))
        for attr in attrs:
            name_tok, value_node = self.tree(attr).children
            name = self.tok(name_tok)
            value = self.value(value_node)
            block.attributes[name] = value
            if name in ("memory", "security", "sandbox") and isinstance(value, str):
                setattr(block, name, value)
            if name == "sandbox":
                tier = _SANDBOX_TIERS.get(str(value).lower())
                if tier is None:
                    raise self.invalid(
                        value_node,
                        f"invalid sandbox tier {value!r}: use docker (tier1), gvisor (tier2), "
                        "firecracker (tier3) or e2b",
                    )
                block.sandbox_tier = tier
            elif name == "timeout":
                seconds = duration_seconds(str(value)) if not isinstance(value, bool) else None
                if seconds is None:
                    raise self.invalid(value_node, f"invalid timeout value {self.text(self.tree(value_node))}")
                block.timeout_seconds = seconds
        return block

    def invalid(self, node: Child, message: str) -> DslValidationError:
        span = self.span(self.tree(node))
        return DslValidationError(message, line=span.line, column=span.column)

    def agent(self, node: Tree[Token]) -> AgentSyntax:
        name, params, ret, *items = node.children
        agent = AgentSyntax(
            name=self.tok(name),
            params=self.params(params),
            return_type=self.type_text(self.tree(ret)) if ret is not None else None,
            span=self.span(node),
        )
        for item in items:
            tree = self.tree(item)
            if tree.data == "capabilities":
                array = self.tree(tree.children[0])
                agent.capabilities.extend(self.capability(self.tree(x)) for x in array.children if x is not None)
            elif tree.data == "policy_def":
                agent.policies.append(self.policy(tree))
            elif tree.data == "function_def":
                agent.functions.append(self.function(tree))
            elif tree.data == "with_block":
                agent.with_blocks.append(self.with_block(tree))
        return agent

    def capability(self, node: Tree[Token]) -> str:
        expr = self.expr(node)
        if expr["kind"] == "string":
            return str(expr["value"])
        if expr["kind"] == "name":
            return str(expr["name"])
        return self.text(node)

    def properties(self, nodes: Sequence[Child]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for prop in nodes:
            key, value = self.tree(prop).children
            out[self.tok(key)] = self.value(value)
        return out

    def type_def(self, node: Tree[Token]) -> TypeDef:
        name, spec = node.children
        spec_tree = self.tree(spec)
        if spec_tree.data == "struct_type":
            fields = [self.param(self.tree(f)) for f in spec_tree.children]
            return TypeDef(name=self.tok(name), fields=fields, span=self.span(node))
        return TypeDef(name=self.tok(name), alias_of=self.type_text(spec_tree), span=self.span(node))

    def channel(self, node: Tree[Token]) -> Channel:
        name, *items = node.children
        channel = Channel(name=self.tok(name), span=self.span(node))
        for item in items:
            tree = self.tree(item)
            if tree.data == "channel_property":
                channel.properties.update(self.properties([tree]))
            elif tree.data == "policy_def":
                channel.policies.append(self.policy(tree))
            else:
                for rule in tree.children:
                    key, level = self.tree(rule).children
                    channel.data_classification[self.tok(key)] = self.tok(level)
        return channel

    def memory(self, node: Tree[Token]) -> MemoryStore:
        name, *items = node.children
        store = MemoryStore(name=self.tok(name), span=self.span(node))
        for item in items:
            tree = self.tree(item)
            if tree.data == "memory_search":
                store.search.update(self.properties(tree.children))
            else:
                store.properties.update(self.properties([tree]))
        return store

    def webhook(self, node: Tree[Token]) -> Webhook:
        name, *items = node.children
        hook = Webhook(name=self.tok(name), span=self.span(node))
        for item in items:
            tree = self.tree(item)
            if tree.data == "webhook_filter":
                hook.filter.update(self.properties(tree.children))
            else:
                hook.properties.update(self.properties([tree]))
        return hook

    def program(self, root: Tree[Token]) -> DslProgram:
        program = DslProgram()
        for item in root.children:
            tree = self.tree(item)
            kind = tree.data
            if kind == "metadata_block":
                program.metadata.update(self.properties(tree.children))
            elif kind == "agent_def":
                program.agents.append(self.agent(tree))
            elif kind == "policy_def":
                program.policies.append(self.policy(tree))
            elif kind == "function_def":
                program.functions.append(self.function(tree))
            elif kind == "type_def":
                program.types.append(self.type_def(tree))
            elif kind == "schedule_def":
                name, *props = tree.children
                program.schedules.append(
                    Schedule(name=self.tok(name), properties=self.properties(props), span=self.span(tree))
                )
            elif kind == "channel_def":
                program.channels.append(self.channel(tree))
            elif kind == "memory_def":
                program.memories.append(self.memory(tree))
            elif kind == "webhook_def":
                program.webhooks.append(self.webhook(tree))
        return program


def _action_names(node: Node) -> list[str]:
    kind = node["kind"]
    if kind == "string":
        return [str(node["value"])]
    if kind == "name":
        return [str(node["name"])]
    if kind == "member":
        inner = _action_names(node["object"])
        return [f"{inner[0]}.{node['property']}"] if len(inner) == 1 else []
    if kind == "call":
        return _action_names(node["callee"])
    if kind == "array":
        return [name for item in node["items"] for name in _action_names(item)]
    return []
