"""Symbiont agent DSL: parse ``.symbi`` / ``.dsl`` source into typed agent definitions.

Public API::

    compile_dsl(source, *, agent_name=None) -> AgentDefinition      # raises DslSyntaxError / DslValidationError
    check_dsl(source, *, agent_name=None) -> CompileResult          # never raises for DSL problems
    parse_program(source) -> DslProgram                             # every top-level item of the file
    render_compile_response(result, *, agent_id, compiled_at) -> dict   # SDK DslCompileResponse JSON
"""

from portside.server.dsl.builder import duration_seconds
from portside.server.dsl.compiler import (
    agent_definition,
    check_dsl,
    compile_dsl,
    parse_program,
    render_compile_response,
)
from portside.server.dsl.errors import DslError, DslSyntaxError, DslValidationError
from portside.server.dsl.model import (
    AgentDefinition,
    AgentSyntax,
    Channel,
    CompileResult,
    DslDiagnostic,
    DslProgram,
    FunctionDef,
    MemoryStore,
    Node,
    Param,
    Policy,
    PolicyRule,
    Schedule,
    Span,
    TypeDef,
    Webhook,
    WithBlock,
)

__all__ = [
    "AgentDefinition",
    "AgentSyntax",
    "Channel",
    "CompileResult",
    "DslDiagnostic",
    "DslError",
    "DslProgram",
    "DslSyntaxError",
    "DslValidationError",
    "FunctionDef",
    "MemoryStore",
    "Node",
    "Param",
    "Policy",
    "PolicyRule",
    "Schedule",
    "Span",
    "TypeDef",
    "Webhook",
    "WithBlock",
    "agent_definition",
    "check_dsl",
    "compile_dsl",
    "duration_seconds",
    "parse_program",
    "render_compile_response",
]
