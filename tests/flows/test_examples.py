"""The flow examples run end to end against a live server."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import ADMIN_KEY, LiveServer

pytestmark = pytest.mark.timeout(90)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_three_agents_example(live_server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    output = load("flows_three_agents").run(live_server.url, ADMIN_KEY, "Great and reliable: I love fast tools.")
    assert output == {"summary": {"summary": "A positive note about great, reliable."}}
    printed = capsys.readouterr().out
    assert "portside SDK: completed" in printed and "ai-spine-sdk: completed" in printed


async def test_task_and_python_example(live_server: LiveServer) -> None:
    output = await load("flows_task_python").run(live_server.url, ADMIN_KEY, "durable orchestration rocks")
    assert output["stats"] == {"count": 3, "mean_length": 8.33, "long_words": ["durable", "orchestration"]}
    assert output["shout"]["results"] == [{"tokens": ["DURABLE"]}, {"tokens": ["ORCHESTRATION"]}]
