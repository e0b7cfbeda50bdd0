"""Pydantic models for a compiled Symbiont DSL program and its agents.

Expressions and statement bodies are kept as JSON trees (``Node``): plain dicts
with a ``kind`` key, documented in docs/dsl.md. Everything else is typed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Node = dict[str, Any]
"""A JSON syntax-tree node: ``{"kind": "call", "callee": {...}, "args": [...]}``."""

RuleEffect = Literal["allow", "deny", "require", "audit"]
SandboxTier = Literal["docker", "gvisor", "firecracker", "e2b"]


class Span(BaseModel):
    """Source position of a definition (1-based lines and columns, end exclusive)."""

    line: int
    column: int
    end_line: int
    end_column: int


class Param(BaseModel):
    """``name: Type`` in an agent or function signature, or a struct field."""

    name: str
    type: str


class PolicyRule(BaseModel):
    """One ``allow|deny|require|audit: <expr> [if <expr>]`` rule."""

    effect: RuleEffect
    actions: list[str] = Field(default_factory=list)
    """Action names the rule names: ``["read"]`` for ``read(x)``, ``["a", "b"]`` for ``["a", "b"]``."""
    action: Node
    action_source: str
    value: Any = None
    """The rule's expression as a plain value when it is constant (e.g. the ``require: {...}`` record)."""
    condition: Node | None = None
    condition_source: str | None = None
    span: Span


class Policy(BaseModel):
    """``policy name { rules }``."""

    name: str
    rules: list[PolicyRule] = Field(default_factory=list)
    span: Span

    def rules_for(self, effect: RuleEffect) -> list[PolicyRule]:
        """The rules of one effect, in source order."""
        return [r for r in self.rules if r.effect == effect]


class WithBlock(BaseModel):
    """``with k = v, ... { body }``: execution settings plus the agent's handler body."""

    attributes: dict[str, Any] = Field(default_factory=dict)
    memory: str | None = None
    security: str | None = None
    sandbox: str | None = None
    sandbox_tier: SandboxTier | None = None
    timeout_seconds: float | None = None
    body: Node
    body_source: str
    span: Span


class FunctionDef(BaseModel):
    """``function name(params) -> Type { body }``."""

    name: str
    params: list[Param] = Field(default_factory=list)
    return_type: str | None = None
    body: Node
    body_source: str
    span: Span


class TypeDef(BaseModel):
    """``type Name = Other`` (alias) or ``type Name = { field: Type, ... }`` (struct)."""

    name: str
    alias_of: str | None = None
    fields: list[Param] | None = None
    span: Span


class Schedule(BaseModel):
    """``schedule name { cron: "...", timezone: "...", agent: "..." }``."""

    name: str
    properties: dict[str, Any] = Field(default_factory=dict)
    span: Span


class Channel(BaseModel):
    """``channel name { properties, policy ..., data_classification { ... } }``."""

    name: str
    properties: dict[str, Any] = Field(default_factory=dict)
    policies: list[Policy] = Field(default_factory=list)
    data_classification: dict[str, str] = Field(default_factory=dict)
    span: Span


class MemoryStore(BaseModel):
    """``memory name { store markdown, path "...", search { ... } }``."""

    name: str
    properties: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, Any] = Field(default_factory=dict)
    span: Span


class Webhook(BaseModel):
    """``webhook name { path "...", provider github, agent x, filter { ... } }``."""

    name: str
    properties: dict[str, Any] = Field(default_factory=dict)
    filter: dict[str, Any] = Field(default_factory=dict)
    span: Span


class AgentSyntax(BaseModel):
    """One ``agent`` block as written, before file-level items are attached."""

    name: str
    params: list[Param] = Field(default_factory=list)
    return_type: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    policies: list[Policy] = Field(default_factory=list)
    with_blocks: list[WithBlock] = Field(default_factory=list)
    functions: list[FunctionDef] = Field(default_factory=list)
    span: Span


class DslProgram(BaseModel):
    """A whole DSL file: every top-level item in source order per kind."""

    metadata: dict[str, Any] = Field(default_factory=dict)
    agents: list[AgentSyntax] = Field(default_factory=list)
    policies: list[Policy] = Field(default_factory=list)
    functions: list[FunctionDef] = Field(default_factory=list)
    types: list[TypeDef] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)
    memories: list[MemoryStore] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)


class AgentDefinition(AgentSyntax):
    """A compiled agent: its own block plus the file's metadata and shared items."""

    version: str | None = None
    author: str | None = None
    description: str | None = None
    license: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    shared_policies: list[Policy] = Field(default_factory=list)
    shared_functions: list[FunctionDef] = Field(default_factory=list)
    types: list[TypeDef] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)
    memories: list[MemoryStore] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)

    def _first_setting(self, key: str) -> Any:
        for block in self.with_blocks:
            value = getattr(block, key)
            if value is not None:
                return value
        return None

    @property
    def memory(self) -> str | None:
        """``memory`` of the first with-block that sets it."""
        value: str | None = self._first_setting("memory")
        return value

    @property
    def security(self) -> str | None:
        """``security`` of the first with-block that sets it."""
        value: str | None = self._first_setting("security")
        return value

    @property
    def sandbox_tier(self) -> SandboxTier | None:
        """Normalised ``sandbox`` of the first with-block that sets it."""
        value: SandboxTier | None = self._first_setting("sandbox_tier")
        return value

    @property
    def timeout_seconds(self) -> float | None:
        """``timeout`` (seconds) of the first with-block that sets it."""
        value: float | None = self._first_setting("timeout_seconds")
        return value


class DslDiagnostic(BaseModel):
    """One compile error or warning with its exact position."""

    code: str
    message: str
    line: int
    column: int
    expected: list[str] = Field(default_factory=list)
    severity: Literal["error", "warning"] = "error"

    def render(self) -> str:
        """``line 3, column 11: unexpected ':' (expected one of: ',', '}')``."""
        text = f"line {self.line}, column {self.column}: {self.message}"
        if self.expected:
            text += f" (expected one of: {', '.join(self.expected)})"
        return text


class CompileResult(BaseModel):
    """Outcome of :func:`check_dsl`: the agent, or the diagnostics explaining why not."""

    success: bool
    agent: AgentDefinition | None = None
    errors: list[DslDiagnostic] = Field(default_factory=list)
    warnings: list[DslDiagnostic] = Field(default_factory=list)
