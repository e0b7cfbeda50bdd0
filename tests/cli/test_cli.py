from __future__ import annotations

from typer.testing import CliRunner

from portside import __version__
from portside.cli.main import app
from tests.conftest import ADMIN_KEY, LiveServer

runner = CliRunner()


def test_version() -> None:
    r = runner.invoke(app, ["version"])
    assert r.exit_code == 0 and __version__ in r.stdout


def test_help_everywhere() -> None:
    for args in (["--help"], ["keys", "--help"], ["serve", "--help"], ["keys", "create", "--help"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, (args, r.output)


def test_health_and_keys(live_server: LiveServer) -> None:
    env = {"PORTSIDE_URL": live_server.url, "PORTSIDE_API_KEY": ADMIN_KEY}
    assert '"status": "ok"' in runner.invoke(app, ["health"], env=env).stdout
    created = runner.invoke(app, ["keys", "create", "ci-bot", "-s", "read"], env=env)
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[0]
    assert secret.startswith("sk_")
    listed = runner.invoke(app, ["keys", "list"], env=env)
    assert "ci-bot" in listed.stdout


def test_cli_reports_errors(live_server: LiveServer) -> None:
    r = runner.invoke(
        app, ["keys", "list"], env={"PORTSIDE_URL": live_server.url, "PORTSIDE_API_KEY": "sk_bad_bad_bad_bad_bad"}
    )
    assert r.exit_code == 1
