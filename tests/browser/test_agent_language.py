"""The in-sandbox agent's command language, without a browser: parsing, snapshot refs, rendering."""

from __future__ import annotations

import pytest

from portside.server.sandboxes._browser_agent import (
    CommandError,
    Ref,
    enhance_snapshot,
    normalize_url,
    parse_ref,
    render,
    split_command,
)

TREE = """- document:
  - 'heading "Hello \\"world\\": yes" [level=1]'
  - navigation:
    - 'link "Link: a"':
      - /url: /x
  - text: Email
  - textbox "Email"
  - button "Go"
  - button "Go"
  - textbox
  - combobox:
    - option "A" [selected]
  - list:
    - listitem: one
  - paragraph: Para"""


def test_snapshot_numbers_interactive_and_named_content() -> None:
    refs: dict[str, Ref] = {}
    out = enhance_snapshot(TREE, refs)
    lines = out.splitlines()
    assert lines[1] == '  - \'heading "Hello \\"world\\": yes" [ref=e1] [level=1]\''
    assert lines[2] == "  - navigation:"  # content roles get a ref only when named
    assert '  - textbox "Email" [ref=' in out
    assert '  - button "Go" [ref=' in out and "[nth=1]" in out
    assert refs["e1"] == Ref(role="heading", name='Hello "world": yes', nth=0, scope=None, frame=None)
    go = [r for r in refs.values() if r.role == "button"]
    assert [r.nth for r in go] == [0, 1]
    # an unnamed textbox is the n-th of ALL textboxes, which is what get_by_role("textbox") counts
    unnamed = [r for r in refs.values() if r.role == "textbox" and r.name is None]
    assert unnamed and unnamed[0].nth == 1
    assert "/url: /x" in out and "listitem: one" in out


def test_snapshot_interactive_only_and_depth() -> None:
    refs: dict[str, Ref] = {}
    out = enhance_snapshot(TREE, refs, interactive=True)
    assert all(line.startswith("- ") for line in out.splitlines())
    assert "heading" not in out and 'link "Link: a" [ref=e1]' in out
    assert set(r.role for r in refs.values()) <= {"link", "textbox", "button", "combobox", "option"}
    shallow = enhance_snapshot(TREE, {}, depth=1)
    assert "option" not in shallow and "button" in shallow
    assert enhance_snapshot("", {}) == "(empty)"
    assert enhance_snapshot("- document:\n  - paragraph: x", {}, interactive=True) == "(no interactive elements)"


def test_snapshot_compact_keeps_refs_and_text() -> None:
    out = enhance_snapshot(TREE, {}, compact=True)
    assert "- list:" not in out  # structure without refs goes
    assert "listitem: one" in out and "button" in out


def test_refs_and_urls() -> None:
    assert parse_ref("@e3") == "e3" and parse_ref("ref=e4") == "e4" and parse_ref("e5") == "e5"
    assert parse_ref("#submit") is None and parse_ref("email") is None
    assert normalize_url("example.com") == "https://example.com"
    assert normalize_url("localhost:8000/x") == "http://localhost:8000/x"
    assert normalize_url("/workspace/a.html") == "file:///workspace/a.html"
    assert normalize_url("file:///workspace/a.html") == "file:///workspace/a.html"
    assert normalize_url("about:blank") == "about:blank"
    assert normalize_url("/workspace/a.html", "/srv/ws") == "file:///srv/ws/a.html"
    assert normalize_url("file:///workspace/a.html", "/srv/ws") == "file:///srv/ws/a.html"
    assert normalize_url("test_agent_language.py").startswith("https://")  # not a file in this cwd


def test_split_command() -> None:
    assert split_command('fill @e2 "hello world"') == (["fill", "@e2", "hello world"], False)
    assert split_command("agent-browser --session x snapshot -i --json") == (["snapshot", "-i"], True)
    with pytest.raises(CommandError):
        split_command('fill @e1 "unterminated')


def test_render_follows_the_cli() -> None:
    assert render("navigate", {"url": "http://x/", "title": "T"}) == "\u2713 T\n  http://x/"
    assert render("gettext", {"text": "hi"}) == "hi"
    assert render("count", {"count": 3}) == "3"
    assert render("isvisible", {"visible": False}) == "false"
    assert render("evaluate", {"result": {"a": 1}}) == '{\n  "a": 1\n}'
    assert render("screenshot", {"path": "a.png"}) == "\u2713 Screenshot saved to a.png"
    assert render("click", {"clicked": True}) == "\u2713 Done"
    assert render("close", {"closed": True}) == "\u2713 Browser closed"
    assert render("tab_switch", {"tabId": "1", "url": "http://x/"}) == "\u2713 Switched to tab [1] (http://x/)"
