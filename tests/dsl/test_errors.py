"""Broken sources fail with exact positions and the tokens that would have been accepted."""

from __future__ import annotations

import pytest

from portside.server.dsl import DslSyntaxError, DslValidationError, check_dsl, compile_dsl, parse_program
from portside.server.errors import InvalidInput


def _syntax(source: str) -> DslSyntaxError:
    with pytest.raises(DslSyntaxError) as info:
        parse_program(source)
    return info.value


def test_missing_metadata_value() -> None:
    # like crates/dsl/tests/samples/invalid_malformed_metadata.dsl: `author` is read as
    # the value of `version`, so the parser stops at the `:` after it
    err = _syntax('metadata {\n    version: \n    author: "x"\n}\n')
    assert (err.line, err.column) == (3, 11)
    assert err.reason == "unexpected ':'"
    assert err.expected == ["','", "'}'", "identifier"]


def test_missing_closing_brace_reports_end_of_input() -> None:
    err = _syntax('metadata {\n    version: "1.0"\n    // Missing closing brace')
    assert (err.line, err.column) == (3, 29)
    assert err.reason == "unexpected end of input"
    assert err.expected == ["','", "'}'", "identifier"]


def test_unknown_top_level_keyword() -> None:
    err = _syntax("unknown_block {\n}\n")
    assert (err.line, err.column) == (1, 1)
    assert err.reason == "unexpected 'unknown_block'"
    assert err.expected == [
        "'agent'",
        "'channel'",
        "'function'",
        "'memory'",
        "'metadata'",
        "'policy'",
        "'schedule'",
        "'type'",
        "'webhook'",
        "end of input",
    ]


def test_policy_rule_without_colon() -> None:
    err = _syntax("agent a {\n  policy p {\n    allow read\n  }\n}\n")
    assert (err.line, err.column, err.expected) == (3, 11, ["':'"])


def test_unknown_policy_effect() -> None:
    err = _syntax("agent a {\n  policy p {\n    permit: read\n  }\n}\n")
    assert (err.line, err.column) == (3, 5)
    assert err.expected == ["'allow'", "'audit'", "'deny'", "'require'", "'}'"]


def test_missing_semicolon_in_block() -> None:
    err = _syntax("agent a {\n  with {\n    let y = 2\n  }\n}\n")
    assert (err.line, err.column, err.expected) == (4, 3, ["';'"])


def test_unclosed_array() -> None:
    err = _syntax('agent a {\n  capabilities = ["x"\n}\n')
    assert (err.line, err.column, err.reason) == (3, 1, "unexpected '}'")
    assert err.expected == ["','", "']'"]


def test_bad_character() -> None:
    err = _syntax("agent a {\n  with {\n    y = @;\n  }\n}\n")
    assert (err.line, err.column, err.reason) == (3, 9, "unexpected character '@'")
    assert "identifier" in err.expected and "string" in err.expected


def test_unclosed_generic() -> None:
    err = _syntax("agent a(x: Map<String, int) { }")
    assert (err.line, err.column, err.expected) == (1, 27, ["','", "'>'"])


def test_else_needs_block() -> None:
    err = _syntax("agent a {\n  with {\n    if x { 1 } else\n  }\n}")
    assert (err.line, err.column, err.expected) == (4, 3, ["'if'", "'{'"])


def test_while_is_not_in_the_grammar() -> None:
    # `while (x)` reads as a call of a function named `while`; the loop body is the error
    err = _syntax("agent a {\n  with {\n    while (x) { }\n  }\n}")
    assert (err.line, err.column, err.reason) == (3, 15, "unexpected '{'")
    assert "';'" in err.expected


def test_unterminated_string() -> None:
    err = _syntax('metadata {\n  version = "1.0\n}\n')
    assert (err.line, err.column, err.reason) == (2, 13, "unexpected character '\"'")


def test_error_is_invalid_input_with_wire_details() -> None:
    err = _syntax("agent {")
    assert isinstance(err, InvalidInput)
    assert err.code == "dsl_syntax_error" and err.status == 400
    assert err.details == {"line": 1, "column": 7, "reason": "unexpected '{'", "expected": ["identifier"]}
    assert err.message == "line 1, column 7: unexpected '{' (expected one of: identifier)"


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        ('agent a {\n  with sandbox = "tier9" { }\n}', 2, 18, "invalid sandbox tier 'tier9'"),
        ('agent a {\n  with timeout = "soon" { }\n}', 2, 18, 'invalid timeout value "soon"'),
        ("agent a {}\nagent a {}", 2, 1, "duplicate agent 'a'"),
        ("agent a {\n policy p {}\n policy p {}\n}", 3, 2, "duplicate policy in agent 'a' 'p'"),
        ('metadata { version = "1" }', 1, 1, "the source defines no agent"),
    ],
)
def test_validation_errors(source: str, line: int, column: int, message: str) -> None:
    with pytest.raises(DslValidationError) as info:
        compile_dsl(source)
    err = info.value
    assert err.code == "dsl_invalid"
    assert (err.line, err.column) == (line, column)
    assert err.reason.startswith(message)


def test_unknown_agent_name() -> None:
    with pytest.raises(DslValidationError, match="no agent named 'b'"):
        compile_dsl("agent a {}", agent_name="b")


def test_check_dsl_collects_diagnostics() -> None:
    result = check_dsl("agent a {\n  capabilities = [x,]\n  oops\n}")
    assert not result.success and result.agent is None
    (diag,) = result.errors
    assert (diag.code, diag.line, diag.column) == ("dsl_syntax_error", 3, 3)


def test_nesting_limit_is_positioned() -> None:
    depth = 70
    source = "agent a { with { return " + "[" * depth + "x" + "]" * depth + "; } }"
    with pytest.raises(DslValidationError) as info:
        compile_dsl(source)
    # the with body is level 1, so the 64th `[` (column 25 + 63) is level 65
    assert (info.value.line, info.value.column) == (1, 88)
    assert "nested more than 64 levels" in info.value.reason
