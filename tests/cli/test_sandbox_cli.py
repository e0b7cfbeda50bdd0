"""``portside sandbox`` and ``portside cargo`` against a live server."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from portside.cli.main import app
from tests.conftest import ADMIN_KEY, LiveServer

runner = CliRunner()


def test_sandbox_and_cargo_commands(live_server: LiveServer) -> None:
    env = {"PORTSIDE_URL": live_server.url, "PORTSIDE_API_KEY": ADMIN_KEY}

    def run(*args: str) -> tuple[int, str, str]:
        r = runner.invoke(app, list(args), env=env)
        return r.exit_code, r.stdout, r.stderr

    code, out, _ = run("cargo", "create", "--size-mb", "16")
    assert code == 0
    cargo = out.strip()
    assert re.fullmatch(r"cargo_\w+", cargo)
    code, out, _ = run("cargo", "ls")
    assert code == 0 and cargo in out

    code, out, err = run("sandbox", "create", "--ttl", "600", "--cargo", cargo)
    assert code == 0, err
    sid = out.strip()
    assert re.fullmatch(r"sbx_\w+", sid) and "ready" in err

    code, out, _ = run("sandbox", "exec", sid, "--python", "x = 6\nprint('hi')\nx * 7")
    assert (code, out) == (0, "hi\n42\n")
    code, out, err = run("sandbox", "exec", sid, "--python", "1/0")
    assert code == 1 and "ZeroDivisionError" in err
    code, out, _ = run("sandbox", "exec", sid, "--shell", "mkdir -p d && echo ok > d/f && ls d")
    assert (code, out) == (0, "f\n")
    code, out, _ = run("sandbox", "exec", sid, "--shell", "cat f", "--cwd", "d")
    assert (code, out) == (0, "ok\n")
    code, out, err = run("sandbox", "exec", sid, "--shell", "echo bad >&2; exit 5")
    assert code == 5 and "bad" in err
    code, _, err = run("sandbox", "exec", sid, "--python", "import time; time.sleep(9)", "--timeout", "1")
    assert code == 1 and "timeout" in err
    code, _, err = run("sandbox", "exec", sid)
    assert code == 2 and "exactly one" in err
    code, _, err = run("sandbox", "exec", "sbx_missing", "--shell", "true")
    assert code == 1 and "not_found" in err

    code, out, _ = run("sandbox", "ls")
    assert code == 0 and sid in out and cargo in out
    code, out, _ = run("sandbox", "ls", "--status", "expired")
    assert code == 0 and sid not in out

    code, _, err = run("cargo", "rm", cargo)
    assert code == 1 and "in use" in err
    code, out, err = run("sandbox", "rm", sid, "sbx_missing")
    assert code == 1 and f"deleted {sid}" in out and "sbx_missing" in err
    code, out, _ = run("cargo", "rm", cargo)
    assert code == 0 and f"deleted {cargo}" in out
    code, out, _ = run("cargo", "ls")
    assert cargo not in out


def test_help() -> None:
    for args in (["sandbox", "--help"], ["sandbox", "exec", "--help"], ["cargo", "--help"], ["cargo", "ls", "--help"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, (args, r.output)
