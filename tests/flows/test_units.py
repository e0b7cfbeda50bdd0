"""Pure units: the expression language, DAG checks, retry policy, the rate limiter."""

from __future__ import annotations

import pytest

from portside.server.errors import RateLimited
from portside.server.flows.expr import ExpressionError, evaluate, render, template_expressions
from portside.server.flows.schema import FlowDefinition, RetryPolicy
from portside.server.flows.validation import find_cycle, structural_issues
from portside.server.ratelimit import RateLimiter

SCOPE = {"input": {"n": 3, "words": ["a", "b"], "user": {"name": "Ada"}}, "nodes": {"x": {"output": {"ok": True}}}}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("input.n > 2 and nodes.x.output.ok", True),
        ("len(input.words)", 2),
        ("input.missing", None),
        ("input.user['name'] + '!'", "Ada!"),
        ("'b' in input.words", True),
        ("input.n if input.n < 2 else -1", -1),
        ("[1, 2][1:]", [2]),
        ("lower('ABC')", "abc"),
        ("true and not null", True),
    ],
)
def test_expressions(source: str, expected: object) -> None:
    assert evaluate(source, SCOPE) == expected


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os')",
        "input.__class__",
        "[x for x in input.words]",
        "2 ** 100000",
        "'a' * 100",
        "open('/etc/passwd')",
        "lambda: 1",
        "input.words[7]",
        "unknown_name",
        "",
    ],
)
def test_unsafe_or_bad_expressions_are_rejected(source: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(source, SCOPE)


def test_templates() -> None:
    template = {"who": "${input.user.name}", "greeting": "hi ${input.user.name}, n=${input.n}", "k": [1, "${input.n}"]}
    assert render(template, SCOPE) == {"who": "Ada", "greeting": "hi Ada, n=3", "k": [1, 3]}
    assert sorted(template_expressions(template)) == ["input.n", "input.n", "input.user.name", "input.user.name"]


def test_cycle_detection() -> None:
    assert find_cycle({"a": [], "b": ["a"], "c": ["b"]}) is None
    cycle = find_cycle({"a": ["c"], "b": ["a"], "c": ["b"], "d": []})
    assert cycle is not None and set(cycle) == {"a", "b", "c"} and cycle[0] == cycle[-1]
    big = {f"n{i}": [f"n{i - 1}"] if i else [] for i in range(5000)}
    assert find_cycle(big) is None  # iterative: no recursion limit on long chains


def test_structural_issues_on_a_clean_dag() -> None:
    flow = FlowDefinition.model_validate(
        {"flow_id": "f", "nodes": [{"id": "a", "type": "noop"}, {"id": "b", "type": "noop", "depends_on": "a"}]}
    )
    assert structural_issues(flow) == []
    assert flow.sinks() == ["b"] and flow.outputs() == ["b"]


def test_retry_backoff() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_seconds=0.5, backoff_multiplier=2, max_backoff_seconds=3)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    limiter.check("k")
    limiter.check("k")
    with pytest.raises(RateLimited) as exc:
        limiter.check("k")
    assert exc.value.retry_after == 1.0 and exc.value.status == 429
    limiter.check("other")  # buckets are per key
    now[0] = 1.0
    limiter.check("k")
    assert not RateLimiter(per_minute=0).enabled
