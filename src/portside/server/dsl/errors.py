"""Errors raised when DSL source cannot be compiled."""

from __future__ import annotations

from portside.server.dsl.model import DslDiagnostic
from portside.server.errors import InvalidInput


class DslError(InvalidInput):
    """A DSL problem at a known position (``line``/``column`` are 1-based)."""

    code = "dsl_invalid"

    def __init__(
        self,
        message: str,
        *,
        line: int,
        column: int,
        expected: list[str] | None = None,
        code: str | None = None,
    ) -> None:
        self.line = line
        self.column = column
        self.reason = message
        self.expected: list[str] = list(expected or [])
        diagnostic = DslDiagnostic(
            code=code or self.code, message=message, line=line, column=column, expected=self.expected
        )
        super().__init__(
            diagnostic.render(),
            code=code,
            details={"line": line, "column": column, "reason": message, "expected": self.expected},
        )
        self.diagnostic = diagnostic


class DslSyntaxError(DslError):
    """The source does not match the grammar; ``expected`` lists the tokens that would."""

    code = "dsl_syntax_error"


class DslValidationError(DslError):
    """The source parses but is not a valid program (unknown sandbox tier, duplicate agent...)."""

    code = "dsl_invalid"
