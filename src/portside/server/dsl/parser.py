"""Lark LALR(1) parser for the Symbiont DSL, with precise syntax errors."""

from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from portside.server.dsl.errors import DslSyntaxError

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")

_FRIENDLY = {
    "IDENT": "identifier",
    "STRING": "string",
    "NUMBER": "number",
    "DURATION": "duration",
    "VAULT_URL": "vault URL",
    "$END": "end of input",
}


@functools.cache
def get_parser() -> Lark:
    """The shared parser (built once; LALR with the contextual lexer)."""
    return Lark(
        GRAMMAR_PATH.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
    )


@functools.cache
def _terminal_labels() -> dict[str, str]:
    labels = dict(_FRIENDLY)
    for term in get_parser().terminals:
        if term.name not in labels and isinstance(term.pattern, PatternStr):
            labels[term.name] = f"'{term.pattern.value}'"
    return labels


def _label(name: str) -> str:
    return _terminal_labels().get(name, name)


def _expected(names: set[str] | frozenset[str] | None) -> list[str]:
    labels = {_label(n) for n in names or () if not n.startswith("__IGNORE")}
    # quoted punctuation/keywords first, then the named token classes
    return sorted(labels, key=lambda s: (not s.startswith("'"), s))


def _acceptable(exc: UnexpectedInput) -> set[str] | None:
    """Terminals that really continue the parse at the error (exact, unlike merged LALR states)."""
    parser = getattr(exc, "interactive_parser", None)
    if parser is None:
        return None
    accepted: set[str] = set()
    for name in parser.choices():
        if not name.isupper():
            continue
        cursor = parser.copy(deepcopy_values=False)
        try:
            cursor.parser_state.feed_token(Token(name, ""), name == "$END")
        except Exception:
            continue
        accepted.add(name)
    return accepted


def _end_position(source: str) -> tuple[int, int]:
    line = source.count("\n") + 1
    column = len(source) - (source.rfind("\n") + 1) + 1
    return line, column


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "end of input"
    text = str(token)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"'{text}'" if token.type not in ("STRING",) else f"string {text}"


def _syntax_error(source: str, exc: UnexpectedInput) -> DslSyntaxError:
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            line, column = _end_position(source)
        else:
            line, column = token.line or 1, token.column or 1
        expected = _acceptable(exc)
        return DslSyntaxError(
            f"unexpected {_describe(token)}",
            line=line,
            column=column,
            expected=_expected(exc.expected if expected is None else expected),
        )
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        char = source[pos] if pos < len(source) else ""
        expected = _acceptable(exc)
        return DslSyntaxError(
            f"unexpected character {char!r}",
            line=exc.line,
            column=exc.column,
            expected=_expected(exc.allowed if expected is None else expected),
        )
    if isinstance(exc, UnexpectedEOF):
        line, column = _end_position(source)
        return DslSyntaxError(
            "unexpected end of input", line=line, column=column, expected=_expected(set(exc.expected))
        )
    line, column = _end_position(source)  # pragma: no cover - lark raises only the three above
    return DslSyntaxError(str(exc), line=line, column=column)  # pragma: no cover


def parse_tree(source: str) -> Tree[Token]:
    """Parse DSL source into a Lark tree; raise :class:`DslSyntaxError` on the first error."""
    try:
        return get_parser().parse(source)
    except UnexpectedInput as exc:
        raise _syntax_error(source, exc) from None
