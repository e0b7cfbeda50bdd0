"""``portside kb``: ingest a folder with a progress bar, then search, add, list, context and remove, against a
live server."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from portside.cli.kb import file_id
from portside.cli.main import app
from tests.conftest import ADMIN_KEY, LiveServer

runner = CliRunner()


def test_kb_ingest_and_search(live_server: LiveServer, tmp_path: Path) -> None:
    env = {"PORTSIDE_URL": live_server.url, "PORTSIDE_API_KEY": ADMIN_KEY, "COLUMNS": "200"}
    docs = tmp_path / "docs"
    (docs / "guides").mkdir(parents=True)
    (docs / ".git").mkdir()
    (docs / "guides" / "install.md").write_text(
        "# Install\n\nDownload the installer and run it.\n\n## Linux\n\n"
        + " ".join(f"On Linux, unpack archive part {i} into /opt." for i in range(60))
    )
    (docs / "faq.txt").write_text("Refunds are possible within thirty days of purchase.")
    (docs / "empty.txt").write_text("  \n")
    (docs / "script.py").write_text("print('not ingested')")
    (docs / ".git" / "notes.md").write_text("hidden")

    r = runner.invoke(app, ["kb", "ingest", str(docs), "--chunk-size", "60", "--overlap", "10"], env=env)
    assert r.exit_code == 0, r.output
    assert "ingested 2 file(s)" in r.output and "skipped 1" in r.output

    r = runner.invoke(app, ["kb", "search", "Can I get my money back?", "--json"], env=env)
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)["results"]
    assert hits[0]["item"]["id"] == "faq.txt" and hits[0]["item"]["metadata"] == {"path": "faq.txt"}

    r = runner.invoke(app, ["kb", "ls"], env=env)
    assert "guides/install.md" in r.stdout and "faq.txt" in r.stdout and "notes.md" not in r.stdout

    r = runner.invoke(
        app, ["kb", "add", "-", "--id", "note", "-m", "team=ops", "-a", "bot"], input="Tea is served at 5.", env=env
    )
    assert r.exit_code == 0 and r.stdout.strip() == "note", r.output
    r = runner.invoke(app, ["kb", "search", "When is tea time?", "-a", "bot", "-m", "team=ops"], env=env)
    assert "note" in r.stdout
    r = runner.invoke(app, ["kb", "context", "How do I install on Linux?", "--max-items", "2"], env=env)
    assert r.exit_code == 0 and r.stdout.startswith("[1] guides/install.md#Install"), r.output
    assert "[2] guides/install.md#Install > Linux" in r.stdout

    # Ingesting again replaces the same ids.
    r = runner.invoke(app, ["kb", "ingest", str(docs), "--suffix", "txt"], env=env)
    assert r.exit_code == 0 and "ingested 1 file(s)" in r.output, r.output
    assert runner.invoke(app, ["kb", "rm", "faq.txt"], env=env).exit_code == 0
    assert runner.invoke(app, ["kb", "rm", "faq.txt"], env=env).exit_code == 1


def test_file_ids_stay_within_200_characters() -> None:
    assert file_id("docs:", "a/b.md") == "docs:a/b.md"
    long = file_id("", "x/" * 150 + "f.md")
    assert len(long) == 200 and long != file_id("", "x/" * 151 + "f.md")
