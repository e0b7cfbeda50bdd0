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


def test_example_flow_files_run_through_the_cli(live_server: LiveServer) -> None:
    """examples/flows/*.yaml are real flow files: `portside flow run FILE --wait` completes them."""
    import json

    from typer.testing import CliRunner

    from portside.cli.main import app

    env = {"PORTSIDE_URL": live_server.url, "PORTSIDE_API_KEY": ADMIN_KEY, "COLUMNS": "80"}
    files = sorted((EXAMPLES / "flows").glob("*.yaml"))
    assert files, "no flow files in examples/flows"
    runner = CliRunner()
    echo = runner.invoke(
        app, ["flow", "run", str(EXAMPLES / "flows" / "echo.yaml"), "-i", '{"text": "hello flows"}', "--wait"], env=env
    )
    assert echo.exit_code == 0, echo.output
    out = json.loads(echo.stdout)
    assert out["shape"]["length"] == 11 and out["shout"]["text"] == "HELLO FLOWS"
    for path in files:
        r = runner.invoke(app, ["flow", "validate", str(path)], env=env)
        assert r.exit_code == 0, (path.name, r.output)


@pytest.mark.bwrap
def test_word_stats_flow_file_runs_python_in_a_sandbox(live_server: LiveServer) -> None:
    import json

    from typer.testing import CliRunner

    from portside.cli.main import app

    env = {"PORTSIDE_URL": live_server.url, "PORTSIDE_API_KEY": ADMIN_KEY}
    path = EXAMPLES / "flows" / "word_stats.yaml"
    r = CliRunner().invoke(
        app, ["flow", "run", str(path), "-i", '{"text": "durable orchestration rocks"}', "--wait"], env=env
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["stats"] == {"count": 3, "longest": "orchestration"} and out["verdict"]["result"] is True
