"""A small, safe expression language for ``when``, ``condition``, ``map.items`` and input templates.

Python syntax restricted to literals, names from the scope (``input``, ``nodes``, ``item``, ``index``),
attribute/subscript access (on dicts, attribute access reads a key; a missing key is ``None``),
arithmetic, comparisons, ``and``/``or``/``not``, ``x if c else y`` and a few pure functions.
No calls to anything else, no comprehensions, no power operator, no attribute access on objects.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

MAX_LENGTH = 2000
MAX_NODES = 300
MAX_SEQUENCE = 100_000


class ExpressionError(ValueError):
    """The expression is malformed or failed to evaluate."""


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "abs": abs,
    "min": min,
    "max": max,
    "sum": sum,
    "round": round,
    "sorted": sorted,
    "any": any,
    "all": all,
    "list": list,
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
}
_CONSTANTS = {"true": True, "false": False, "null": None, "none": None}

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_CMPOPS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Attribute,
    ast.Subscript,
    ast.Slice,
    ast.List,
    ast.Tuple,
    ast.Dict,
    *_BINOPS,
    *_CMPOPS,
)


@lru_cache(maxsize=2048)
def compile_expression(source: str) -> ast.Expression:
    """Parse and check an expression; raises ExpressionError with a readable reason."""
    text = source.strip()
    if not text:
        raise ExpressionError("empty expression")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}") from None
    count = 0
    for node in ast.walk(tree):
        count += 1
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(f"'{type(node).__name__}' is not allowed in expressions")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
                raise ExpressionError(f"only these functions may be called: {', '.join(sorted(_FUNCTIONS))}")
            if node.keywords:
                raise ExpressionError("keyword arguments are not allowed")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError("names starting with '_' are not allowed")
    if count > MAX_NODES:
        raise ExpressionError(f"expression too complex (more than {MAX_NODES} parts)")
    return tree


def _get(container: Any, key: Any) -> Any:
    if isinstance(container, Mapping):
        return container.get(key)
    if isinstance(container, (list, tuple, str)):
        if isinstance(key, bool) or not isinstance(key, (int, slice)):
            raise ExpressionError(f"sequence index must be an integer, got {type(key).__name__}")
        try:
            return container[key]
        except IndexError:
            raise ExpressionError(f"index {key} out of range") from None
    if container is None:
        return None
    raise ExpressionError(f"cannot index a {type(container).__name__}")


def _check_size(value: Any) -> Any:
    if isinstance(value, (str, list, tuple)) and len(value) > MAX_SEQUENCE:
        raise ExpressionError("expression result too large")
    return value


def _eval(node: ast.AST, scope: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body, scope)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in scope:
            return scope[node.id]
        if node.id.lower() in _CONSTANTS:
            return _CONSTANTS[node.id.lower()]
        raise ExpressionError(f"unknown name '{node.id}' (known: {', '.join(sorted(scope))})")
    if isinstance(node, ast.Attribute):
        return _get(_eval(node.value, scope), node.attr)
    if isinstance(node, ast.Subscript):
        target = _eval(node.value, scope)
        if isinstance(node.slice, ast.Slice):
            parts = [
                None if p is None else _eval(p, scope) for p in (node.slice.lower, node.slice.upper, node.slice.step)
            ]
            return _get(target, slice(*parts))
        return _get(target, _eval(node.slice, scope))
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            result: Any = True
            for v in node.values:
                result = _eval(v, scope)
                if not result:
                    return result
            return result
        for v in node.values:
            result = _eval(v, scope)
            if result:
                return result
        return result
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, scope)
        if isinstance(node.op, ast.Not):
            return not value
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, scope), _eval(node.right, scope)
        if isinstance(node.op, ast.Mult) and (
            isinstance(left, (str, list, tuple)) or isinstance(right, (str, list, tuple))
        ):
            raise ExpressionError("repeating strings or lists with '*' is not allowed")
        return _check_size(_BINOPS[type(node.op)](left, right))
    if isinstance(node, ast.Compare):
        left = _eval(node.left, scope)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, scope)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body, scope) if _eval(node.test, scope) else _eval(node.orelse, scope)
    if isinstance(node, ast.Call):
        func = _FUNCTIONS[node.func.id]  # type: ignore[attr-defined]
        return _check_size(func(*[_eval(a, scope) for a in node.args]))
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e, scope) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_eval(k, scope): _eval(v, scope) for k, v in zip(node.keys, node.values, strict=True) if k is not None}
    raise ExpressionError(f"'{type(node).__name__}' is not allowed")  # pragma: no cover - compile checks


def evaluate(source: str, scope: Mapping[str, Any]) -> Any:
    """Evaluate ``source`` against ``scope``; errors become ExpressionError."""
    tree = compile_expression(source)
    try:
        return _eval(tree, scope)
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError("expression nested too deeply") from None
    except Exception as exc:
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from None


_WHOLE = re.compile(r"^\$\{(.+)\}$", re.DOTALL)
_PART = re.compile(r"\$\{([^}]+)\}")


def template_expressions(value: Any) -> list[str]:
    """Every ``${...}`` expression inside a template (for validation)."""
    if isinstance(value, Mapping):
        return [e for v in value.values() for e in template_expressions(v)]
    if isinstance(value, list):
        return [e for v in value for e in template_expressions(v)]
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole and "${" not in whole.group(1):
            return [whole.group(1)]
        return _PART.findall(value)
    return []


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """Fill a template: ``"${expr}"`` becomes the value, ``"a ${expr} b"`` string interpolation."""
    if isinstance(value, Mapping):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, scope) for v in value]
    if isinstance(value, str) and "${" in value:
        whole = _WHOLE.match(value)
        if whole and "${" not in whole.group(1):
            return evaluate(whole.group(1), scope)
        return _PART.sub(lambda m: _to_text(evaluate(m.group(1), scope)), value)
    return value


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
