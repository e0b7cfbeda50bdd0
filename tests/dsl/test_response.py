"""The compile response renders to what the Symbiont SDK's DslCompileResponse reads."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from symbiont import DslCompileResponse

from portside.server.dsl import check_dsl, render_compile_response

WHEN = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

SOURCE = """\
metadata { version = "1.0.0", author = "me", description = "demo" }
agent echo(text: String) -> String {
    capabilities = ["speak"]
    policy p { allow: speak(text) if text != "" }
    with memory = "persistent", security = "high", sandbox = "gvisor", timeout = 30s {
        return text;
    }
}
agent second {}
"""


def test_success_response_round_trips_through_the_sdk() -> None:
    result = check_dsl(SOURCE, agent_name="echo")
    assert result.success and result.warnings == []
    body = render_compile_response(result, agent_id="agt_123", compiled_at=WHEN)
    json.dumps(body)  # plain JSON
    sdk = DslCompileResponse(**body)
    assert sdk.success and sdk.agent_id == "agt_123" and sdk.errors == [] and sdk.compiled_at == WHEN
    agent = body["agent"]
    assert agent["name"] == "echo" and agent["version"] == "1.0.0"
    assert agent["capabilities"] == ["speak"]
    assert agent["with_blocks"][0]["sandbox_tier"] == "gvisor"
    assert agent["with_blocks"][0]["timeout_seconds"] == 30
    assert agent["policies"][0]["rules"][0]["condition_source"] == 'text != ""'


def test_failure_response_has_positioned_error_strings() -> None:
    result = check_dsl('agent echo {\n  capabilities = "speak"\n}', agent_name="echo")
    body = render_compile_response(result, agent_id="ignored", compiled_at=WHEN)
    sdk = DslCompileResponse(**body)
    assert not sdk.success and sdk.agent_id is None
    assert sdk.errors == ["line 2, column 18: unexpected string \"speak\" (expected one of: '[')"]
    assert body["diagnostics"] == [
        {
            "code": "dsl_syntax_error",
            "message": 'unexpected string "speak"',
            "line": 2,
            "column": 18,
            "expected": ["'['"],
            "severity": "error",
        }
    ]
    assert body["agent"] is None


def test_warnings_for_several_agents_and_missing_metadata() -> None:
    result = check_dsl("agent a {}\nagent b {}")
    assert result.success and result.agent is not None and result.agent.name == "a"
    codes = [w.code for w in result.warnings]
    assert codes == ["dsl_multiple_agents", "dsl_missing_metadata", "dsl_missing_metadata", "dsl_missing_metadata"]
    body = render_compile_response(result, agent_id=None, compiled_at=WHEN)
    assert DslCompileResponse(**body).warnings[0].startswith("line 1, column 1: the source defines several agents")
