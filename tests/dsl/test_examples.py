"""Documented Symbiont DSL forms parse to the right structure.

The sources below follow the examples of docs/dsl-specification.md, docs/dsl-guide.md,
crates/dsl/tests/samples and agents/*.symbi in github.com/ThirdKeyAI/Symbiont
(written for these tests, same syntax).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portside.server.dsl import (
    DslSyntaxError,
    compile_dsl,
    duration_seconds,
    parse_program,
)

SPEC_AGENT = """\
metadata {
    version = "1.0.0"
    author = "ThirdKey"
    description = "Spec example"
    tags = ["category", "use-case"]
}

agent summarize(input: String, limit: int) -> Output {
    capabilities = ["read", "analyze"]

    policy guard {
        allow: read(input) if true
        deny: write(any)
    }

    with memory = "ephemeral", sandbox = "tier1", timeout = "30m" {
        result = process(input);
        return result;
    }
}
"""


def test_spec_agent_structure() -> None:
    agent = compile_dsl(SPEC_AGENT)
    assert agent.name == "summarize"
    assert (agent.version, agent.author, agent.description) == ("1.0.0", "ThirdKey", "Spec example")
    assert agent.tags == ["category", "use-case"]
    assert [(p.name, p.type) for p in agent.params] == [("input", "String"), ("limit", "int")]
    assert agent.return_type == "Output"
    assert agent.capabilities == ["read", "analyze"]

    (policy,) = agent.policies
    assert policy.name == "guard"
    allow, deny = policy.rules
    assert (allow.effect, allow.actions, allow.action_source) == ("allow", ["read"], "read(input)")
    assert allow.condition == {"kind": "bool", "value": True}
    assert allow.condition_source == "true"
    assert allow.span.line == 12 and allow.span.column == 9
    assert (deny.effect, deny.actions, deny.condition) == ("deny", ["write"], None)
    assert deny.action == {
        "kind": "call",
        "callee": {"kind": "name", "name": "write"},
        "args": [{"kind": "name", "name": "any"}],
    }

    (block,) = agent.with_blocks
    assert block.attributes == {"memory": "ephemeral", "sandbox": "tier1", "timeout": "30m"}
    assert (block.memory, block.sandbox, block.sandbox_tier) == ("ephemeral", "tier1", "docker")
    assert block.timeout_seconds == 1800
    assert agent.memory == "ephemeral" and agent.sandbox_tier == "docker" and agent.timeout_seconds == 1800
    first, second = block.body["statements"]
    assert first["kind"] == "assign" and first["target"] == {"kind": "name", "name": "result"}
    assert second == {"kind": "return", "value": {"kind": "name", "name": "result"}, "line": 18}
    assert block.body_source.startswith("{") and "process(input)" in block.body_source
    assert agent.span.line == 8 and agent.span.column == 1


SAMPLE_COMPLETE = """\
// Complete example in the style of crates/dsl/tests/samples
metadata {
    version: "1.0",
    author: "AI Assistant",
    description: "Complete DSL demonstration"
}

agent DataProcessor {
    capabilities: [read, write, transform]

    policy ProcessingPolicy {
        allow: read(data_source)
        require: validate(input)
        deny: delete(critical_data)
    }

    function process_data(input: String) -> Result<String> {
        let validated = validate(input);
        if validated {
            return transform(input);
        } else {
            return error("Invalid input");
        }
    }
}

type DataSource = {
    url: String,
    format: String,
    credentials: Option<String>
}

type Settings = Map<String, List<int>>;

agent APIGateway {
    capabilities: [route, authenticate, log]
    policy SecurityPolicy {
        require: authenticate(request)
        audit: log(all_requests)
    }
}
"""


def test_colon_style_agent_with_function_and_types() -> None:
    program = parse_program(SAMPLE_COMPLETE)
    assert [a.name for a in program.agents] == ["DataProcessor", "APIGateway"]
    assert program.metadata == {"version": "1.0", "author": "AI Assistant", "description": "Complete DSL demonstration"}

    agent = compile_dsl(SAMPLE_COMPLETE)
    assert agent.name == "DataProcessor"
    assert agent.capabilities == ["read", "write", "transform"]
    assert [(r.effect, r.actions) for r in agent.policies[0].rules] == [
        ("allow", ["read"]),
        ("require", ["validate"]),
        ("deny", ["delete"]),
    ]
    (fn,) = agent.functions
    assert (fn.name, fn.return_type, [p.type for p in fn.params]) == ("process_data", "Result<String>", ["String"])
    let, branch = fn.body["statements"]
    assert let["kind"] == "let" and let["name"] == "validated"
    assert branch["kind"] == "if" and branch["condition"] == {"kind": "name", "name": "validated"}
    assert branch["else"]["statements"][0]["kind"] == "return"

    source, alias = agent.types
    assert source.name == "DataSource" and source.alias_of is None
    assert [(f.name, f.type) for f in source.fields or []] == [
        ("url", "String"),
        ("format", "String"),
        ("credentials", "Option<String>"),
    ]
    assert alias.alias_of == "Map<String, List<int>>"

    gateway = compile_dsl(SAMPLE_COMPLETE, agent_name="APIGateway")
    assert gateway.policies[0].rules_for("audit")[0].actions == ["log"]


WEBHOOK_AGENT = """\
metadata {
    version = "1.4.0"
    author = "Community"
    description = "Webhook handler"
}

# first-class webhook and memory blocks
webhook slack_alerts {
    path     "/hooks/slack"
    provider slack
    secret   "vault://webhooks/slack/secret"
    agent    webhook_handler
    filter {
        json_path "$.type"
        equals    "security_alert"
    }
}

memory incident_history {
    store     markdown
    path      "data/incidents"
    retention 730d
    search {
        vector_weight  0.5
        keyword_weight 0.5
    }
}

schedule nightly { cron: "0 2 * * *", timezone: "UTC", agent: "webhook_handler" }

agent webhook_handler(body: JSON) -> Maybe<Alert> {
    capabilities = ["http_input", "alerting"]

    policy webhook_guard {
        allow: ["parse_json", "publish_alert"]
            if body.source == "slack" || body.user.ends_with("@company.com")
        allow: "publish_alert" if body.type == "security_alert"
        deny: ["execute_code", "file_access"]
        deny: delegate(agent) if agent.name != "trusted_reviewer"
        require: {
            signature_verification: true,
            rate_limiting: "100/minute"
        }
        audit: { log_level: "info", retention_days: 90 }
    }

    with
        memory = "ephemeral",
        security = "high",
        sandbox = "Tier1",
        timeout = 60.seconds,
        max_cpu_cores = 0.5
    {
        try {
            let signature = body.headers["X-Webhook-Signature"];
            let secret = vault://webhooks/slack/secret;
            if !verify_hmac_sha256(body.raw, secret, signature) {
                log("WARNING", "Invalid signature");
                return None;
            }
            alert = { "summary": body.message, "level": body.severity };
            publish("topic://alerts", alert);
            return Some(alert);
        } catch (error) {
            log("ERROR", "failed: " + error.message);
            return None;
        }
    }
}
"""


def test_webhook_agent_and_integrations() -> None:
    agent = compile_dsl(WEBHOOK_AGENT)
    (hook,) = agent.webhooks
    assert hook.properties == {
        "path": "/hooks/slack",
        "provider": "slack",
        "secret": "vault://webhooks/slack/secret",
        "agent": "webhook_handler",
    }
    assert hook.filter == {"json_path": "$.type", "equals": "security_alert"}
    (memory,) = agent.memories
    assert memory.properties == {"store": "markdown", "path": "data/incidents", "retention": "730d"}
    assert memory.search == {"vector_weight": 0.5, "keyword_weight": 0.5}
    (schedule,) = agent.schedules
    assert schedule.properties == {"cron": "0 2 * * *", "timezone": "UTC", "agent": "webhook_handler"}

    rules = agent.policies[0].rules
    assert rules[0].actions == ["parse_json", "publish_alert"]
    assert rules[0].condition_source == 'body.source == "slack" || body.user.ends_with("@company.com")'
    assert rules[0].condition is not None and rules[0].condition["op"] == "||"
    assert rules[1].actions == ["publish_alert"] and rules[1].value == "publish_alert"
    assert rules[3].condition == {
        "kind": "binary",
        "op": "!=",
        "left": {"kind": "member", "object": {"kind": "name", "name": "agent"}, "property": "name"},
        "right": {"kind": "string", "value": "trusted_reviewer"},
    }
    require = agent.policies[0].rules_for("require")[0]
    assert require.actions == [] and require.value == {"signature_verification": True, "rate_limiting": "100/minute"}
    assert agent.policies[0].rules_for("audit")[0].value == {"log_level": "info", "retention_days": 90}

    (block,) = agent.with_blocks
    assert block.security == "high" and block.sandbox_tier == "docker" and block.timeout_seconds == 60
    assert block.attributes["max_cpu_cores"] == 0.5 and block.attributes["timeout"] == "60.seconds"
    (attempt,) = block.body["statements"]
    assert attempt["kind"] == "try"
    assert attempt["catches"][0]["name"] == "error" and attempt["catches"][0]["type"] is None
    stmts = attempt["body"]["statements"]
    assert stmts[1]["value"] == {"kind": "vault", "value": "vault://webhooks/slack/secret"}
    assert stmts[0]["value"]["kind"] == "index"
    assert stmts[2]["condition"]["kind"] == "unary" and stmts[2]["condition"]["op"] == "!"
    assert stmts[3]["value"]["kind"] == "record"
    assert [f["key"] for f in stmts[3]["value"]["fields"]] == ["summary", "level"]


CONTROL_FLOW = """\
agent hitl(action: String, target: Service) -> OperationResult {
    capabilities: [read_logs]
    with sandbox = docker, timeout = 300000 {
        match action {
            "diagnose" => {
                let logs = read_logs(target, lines = 500, window: "15m");
                return OperationResult { action: "diagnose", result: logs };
            },
            "count" => 42,
            _ => {
                return error("Unknown action: " + action);
            }
        }
        for item in target.items {
            total += item.size * 2;
        }
        let critical = findings.filter(f => f.severity == "critical" && not f.ignored);
        let label = if critical.len() == 0 { "APPROVE" } else { "REVIEW" };
        if let Some(x) = lookup(target) {
            x
        } else if target.ready {
            -1
        }
    }
}
"""


def test_statements_and_expressions() -> None:
    agent = compile_dsl(CONTROL_FLOW)
    (block,) = agent.with_blocks
    assert block.sandbox_tier == "docker" and block.timeout_seconds == 300000
    match, loop, let_critical, let_label, if_let = block.body["statements"]

    assert match["kind"] == "match" and match["subject"] == {"kind": "name", "name": "action"}
    patterns = [arm["pattern"] for arm in match["arms"]]
    assert patterns == [
        {"kind": "string", "value": "diagnose"},
        {"kind": "string", "value": "count"},
        {"kind": "name", "name": "_"},
    ]
    assert match["arms"][1]["body"] == {"kind": "number", "value": 42}
    diagnose = match["arms"][0]["body"]["statements"]
    call_args = diagnose[0]["value"]["args"]
    assert call_args[1] == {"kind": "named_arg", "name": "lines", "value": {"kind": "number", "value": 500}}
    assert call_args[2]["name"] == "window"
    assert diagnose[1]["value"]["kind"] == "struct" and diagnose[1]["value"]["type"] == "OperationResult"

    assert loop["kind"] == "for" and loop["var"] == "item"
    assert loop["body"]["statements"][0]["op"] == "+="

    lam = let_critical["value"]["args"][0]
    assert lam["kind"] == "lambda" and lam["param"] == "f"
    assert lam["body"]["op"] == "&&" and lam["body"]["right"]["op"] == "not"

    assert let_label["value"]["kind"] == "if"
    assert let_label["value"]["then"]["result"] == {"kind": "string", "value": "APPROVE"}

    assert if_let["let"]["pattern"] == {"name": "Some", "args": [{"name": "x"}]}
    assert if_let["then"]["result"] == {"kind": "name", "name": "x"}
    assert if_let["else"]["kind"] == "if" and if_let["else"]["then"]["result"]["op"] == "-"


def test_operator_precedence() -> None:
    agent = compile_dsl("agent p { with { return a || b && c == d + e * -f; } }")
    expr = agent.with_blocks[0].body["statements"][0]["value"]
    assert expr["op"] == "||"
    and_ = expr["right"]
    assert and_["op"] == "&&" and and_["right"]["op"] == "=="
    add = and_["right"]["right"]
    assert add["op"] == "+" and add["right"]["op"] == "*" and add["right"]["right"]["kind"] == "unary"


CHANNEL = """\
channel slack_ops {
    platform: "slack"
    channels: ["#ops-agents", "#compliance"]
    default_deny: true

    policy channel_guard {
        allow: invoke("compliance_check")
        audit: all_interactions
    }

    data_classification {
        pii: redact
        phi: block
    }
}
agent ops { capabilities = [] }
"""


def test_channel_block() -> None:
    (channel,) = parse_program(CHANNEL).channels
    assert channel.properties == {"platform": "slack", "channels": ["#ops-agents", "#compliance"], "default_deny": True}
    assert channel.policies[0].rules[0].actions == ["invoke"]
    assert channel.policies[0].rules[1].actions == ["all_interactions"]
    assert channel.data_classification == {"pii": "redact", "phi": "block"}


def test_keywords_are_contextual_and_comments_are_skipped() -> None:
    source = """\
/* block comments are accepted too */
agent memory_user {   // `memory`, `filter`, `type` and `agent` stay identifiers in expressions
    policy p { allow: filter(memory) if agent.type == "x" }  # hash comment
    with { let memory = filter(search); memory }
}
"""
    agent = compile_dsl(source)
    assert agent.name == "memory_user"
    assert agent.policies[0].rules[0].actions == ["filter"]
    assert agent.with_blocks[0].body["result"] == {"kind": "name", "name": "memory"}


def test_literals() -> None:
    agent = compile_dsl('agent l { with { let x = [1_000, 3.14, 6months, 5m, "a\\"b\\n", false]; } }')
    items = agent.with_blocks[0].body["statements"][0]["value"]["items"]
    assert items[0] == {"kind": "number", "value": 1000}
    assert items[1] == {"kind": "number", "value": 3.14}
    assert items[2] == {"kind": "duration", "value": "6months", "seconds": 6 * 2592000.0}
    assert items[3]["seconds"] == 300
    assert items[4] == {"kind": "string", "value": 'a"b\n'}
    assert items[5] == {"kind": "bool", "value": False}
    assert duration_seconds("2h") == 7200 and duration_seconds("later") is None


def test_sdk_readme_example_is_not_grammar_conformant() -> None:
    # The symbiont-sdk README shows `name:` / `trigger` / `action` items inside an agent;
    # the tree-sitter grammar only allows capabilities, policy, function and with there.
    source = 'agent webhook_handler {\n    name: "Webhook Handler"\n}\n'
    with pytest.raises(DslSyntaxError) as info:
        compile_dsl(source)
    assert (info.value.line, info.value.column) == (2, 5)
    assert info.value.expected == ["'capabilities'", "'function'", "'policy'", "'with'", "'}'"]


_SAMPLES = os.environ.get("SYMBIONT_DSL_SAMPLES", "")


@pytest.mark.skipif(not _SAMPLES, reason="set SYMBIONT_DSL_SAMPLES to a directory of upstream .symbi/.dsl files")
def test_upstream_samples_parse() -> None:  # pragma: no cover - optional corpus
    files = sorted(p for p in Path(_SAMPLES).rglob("*") if p.suffix in (".symbi", ".dsl"))
    assert files
    for path in files:
        if "invalid" in path.name:
            with pytest.raises(DslSyntaxError):
                parse_program(path.read_text())
        else:
            parse_program(path.read_text())
