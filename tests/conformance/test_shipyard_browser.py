"""The unmodified shipyard-neo-sdk 0.2.0 drives the browser capability against Portside.

Pages come from a web server the test starts INSIDE the sandbox (its loopback is the sandbox's own; the
sandbox has no network), and from a file in the workspace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from shipyard_neo import BayClient, CapabilityNotSupportedError, NotFoundError, SkillReleaseStage
from shipyard_neo.sandbox import Sandbox

from tests.browser.helpers import require_browser
from tests.conftest import ADMIN_KEY, LiveServer, make_settings

pytestmark = pytest.mark.bwrap

SITE = {
    "form.html": """<!doctype html><html><head><title>Sign up</title></head><body>
<h1>Sign up</h1>
<form action="result.html" method="get">
  <label>Name <input id="name" name="name"></label>
  <label>Newsletter <input id="news" type="checkbox" name="news"></label>
  <button id="submit" type="submit">Submit</button>
</form>
<script>document.cookie = "visited=yes; path=/";</script>
</body></html>""",
    "result.html": """<!doctype html><html><head><title>Welcome</title></head><body>
<h1>Welcome</h1><p id="greeting"></p>
<script>
const q = new URLSearchParams(location.search);
document.getElementById("greeting").textContent = "Hello, " + q.get("name") + (q.get("news") ? " (subscribed)" : "");
</script></body></html>""",
}
PORT = 8765
START_SITE = f"""
import socket, subprocess, time
subprocess.Popen(["python3", "-m", "http.server", "{PORT}", "--bind", "127.0.0.1", "--directory", "site"],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", {PORT}), timeout=0.2).close()
        break
    except OSError:
        time.sleep(0.05)
print("site ready")
"""
BASE = f"http://127.0.0.1:{PORT}"
_REF = re.compile(r'- (\w+) "([^"]*)" \[ref=(e\d+)\]')


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_browser()
    srv = LiveServer(make_settings(tmp_path_factory.mktemp("browser") / "data")).start()
    try:
        yield srv
    finally:
        srv.stop()


async def _serve_site(sandbox: Sandbox) -> None:
    for name, content in SITE.items():
        await sandbox.filesystem.write_file(f"site/{name}", content)
    started = await sandbox.python.exec(START_SITE)
    assert started.success and "site ready" in started.output, started


def _refs(snapshot: str) -> dict[tuple[str, str], str]:
    return {(role, name): ref for role, name, ref in _REF.findall(snapshot)}


async def test_open_snapshot_fill_click_read(server: LiveServer) -> None:
    async with BayClient(endpoint_url=server.url, access_token=ADMIN_KEY) as client:
        sandbox = await client.create_sandbox(profile="browser-python", ttl=600)
        assert "browser" in sandbox.capabilities
        await _serve_site(sandbox)

        opened = await sandbox.browser.exec(f"open {BASE}/form.html", description="open the form", tags="signup")
        assert opened.success and opened.exit_code == 0 and opened.execution_id, opened
        assert opened.output.splitlines() == ["\u2713 Sign up", f"  {BASE}/form.html"]
        assert opened.trace_ref is None

        snap = await sandbox.browser.exec("snapshot -i")
        refs = _refs(snap.output)
        assert {("textbox", "Name"), ("checkbox", "Newsletter"), ("button", "Submit")} <= set(refs), snap.output

        # refs from one call are used by the next ones: the session persists across exec calls
        assert (await sandbox.browser.exec(f'fill @{refs["textbox", "Name"]} "Ada Lovelace"')).success
        assert (await sandbox.browser.exec(f"check @{refs['checkbox', 'Newsletter']}")).success
        assert (await sandbox.browser.exec(f"get value @{refs['textbox', 'Name']}")).output == "Ada Lovelace\n"
        clicked = await sandbox.browser.exec(f"click @{refs['button', 'Submit']}")
        assert clicked.success, clicked
        assert (await sandbox.browser.exec("wait --url **/result.html*")).success
        greeting = await sandbox.browser.exec('get text "#greeting"')
        assert greeting.output.strip() == "Hello, Ada Lovelace (subscribed)"
        assert (await sandbox.browser.exec("get title")).output == "Welcome\n"
        full = await sandbox.browser.exec("snapshot")
        assert '- heading "Welcome" [ref=e1] [level=1]' in full.output
        assert "visited=yes" in (await sandbox.browser.exec("cookies")).output

        # screenshots land in the workspace
        shot = await sandbox.browser.exec("screenshot shots/result.png")
        assert shot.output.strip() == "\u2713 Screenshot saved to shots/result.png"
        assert (await sandbox.filesystem.download("shots/result.png")).startswith(b"\x89PNG\r\n\x1a\n")
        as_json = json.loads((await sandbox.browser.exec("get url --json")).output)
        assert as_json["success"] and as_json["data"]["url"].startswith(f"{BASE}/result.html?name=Ada")

        # learn keeps a trace as the execution's payload without returning it
        learned = await sandbox.browser.exec("get title", learn=True)
        assert learned.success and learned.trace_ref is None and learned.execution_id
        learned_entry = await sandbox.get_execution(learned.execution_id)
        assert learned_entry.payload_ref and learned_entry.payload_ref.endswith("/trace.json")

        # a page from a workspace file
        local = await sandbox.browser.exec("open file:///workspace/site/form.html")
        assert local.success and "Sign up" in local.output

        # a failing command is a 200 with success false and the CLI's exit code
        bad = await sandbox.browser.exec("click @e999")
        assert not bad.success and bad.exit_code == 1 and bad.error and "Unknown ref @e999" in bad.error
        unknown = await sandbox.browser.exec("teleport home")
        assert not unknown.success and "Unknown command: teleport" in (unknown.error or "")
        slow = await sandbox.browser.exec("wait 5000", timeout=1)
        assert not slow.success and slow.exit_code == -1 and "timed out" in (slow.error or "")

        # no network by default: only the sandbox's own loopback and files
        outside = await sandbox.browser.exec("open http://198.51.100.7/", timeout=20)
        assert not outside.success and "ERR_" in (outside.error or "")

        # browser executions are evidence in the history, like python and shell
        tagged = await sandbox.get_execution_history(exec_type="browser", tags="signup")
        assert [e.id for e in tagged.entries] == [opened.execution_id]
        entry = await sandbox.get_execution(opened.execution_id)
        assert entry.exec_type == "browser" and entry.code == f"open {BASE}/form.html" and entry.success
        assert entry.description == "open the form"
        last = await sandbox.get_last_execution(exec_type="browser")
        assert last.id == outside.execution_id and not last.success
        await sandbox.delete()


async def test_batch_stops_on_error_and_keeps_a_trace(server: LiveServer) -> None:
    async with BayClient(endpoint_url=server.url, access_token=ADMIN_KEY) as client:
        sandbox = await client.create_sandbox(profile="browser-python", ttl=600)
        await _serve_site(sandbox)
        steps = [f"open {BASE}/form.html", 'fill "#name" "Grace"', "click @e404", "get title"]

        stopped = await sandbox.browser.exec_batch(steps, stop_on_error=True, include_trace=True, tags="batch")
        assert not stopped.success and stopped.total_steps == 4 and stopped.completed_steps == 3
        assert [r.exit_code for r in stopped.results] == [0, 0, 1]
        assert [r.step_index for r in stopped.results] == [0, 1, 2]
        assert stopped.results[2].cmd == "click @e404" and "Unknown ref" in stopped.results[2].stderr
        assert stopped.execution_id and stopped.trace_ref and stopped.duration_ms > 0

        trace = json.loads(await sandbox.filesystem.read_file(stopped.trace_ref))
        assert trace["kind"] == "browser_batch_trace" and trace["completed_steps"] == 3
        assert [s["cmd"] for s in trace["steps"]] == steps[:3]
        first_shot = trace["steps"][0]["screenshot"]
        assert (await sandbox.filesystem.download(first_shot)).startswith(b"\x89PNG")
        entry = await sandbox.get_execution(stopped.execution_id)
        assert entry.exec_type == "browser" and entry.code == "\n".join(steps) and not entry.success
        assert entry.payload_ref == stopped.trace_ref

        kept_going = await sandbox.browser.exec_batch(steps, stop_on_error=False)
        assert kept_going.completed_steps == 4 and not kept_going.success and kept_going.trace_ref is None
        assert [r.exit_code for r in kept_going.results] == [0, 0, 1, 0]
        assert kept_going.results[3].stdout == "Sign up\n"

        budget = await sandbox.browser.exec_batch(["wait 1200", "wait 3000", "get title"], timeout=2)
        assert not budget.success and budget.completed_steps == 2 and budget.results[1].exit_code == -1

        ok = await sandbox.browser.exec_batch(["get title", "get url"])
        assert ok.success and ok.completed_steps == 2 and ok.results[1].stdout == f"{BASE}/form.html\n"
        await sandbox.delete()


async def test_browser_skill_from_history_promoted_and_replayed(server: LiveServer) -> None:
    async with BayClient(endpoint_url=server.url, access_token=ADMIN_KEY) as client:
        sandbox = await client.create_sandbox(profile="browser-python", ttl=600)
        await _serve_site(sandbox)

        # evidence: the steps an agent took, tagged for later retrieval
        await sandbox.browser.exec(f"open {BASE}/form.html", tags="signup-flow")
        await sandbox.browser.exec("snapshot -i")  # exploring, not tagged
        await sandbox.browser.exec_batch(
            ['fill "#name" "Grace"', 'click "#submit"', "wait --url **/result.html*", 'get text "#greeting"'],
            tags="signup-flow",
        )
        history = await sandbox.get_execution_history(exec_type="browser", tags="signup-flow", success_only=True)
        evidence = [e.id for e in reversed(history.entries)]  # oldest first
        assert len(evidence) == 2

        candidate = await client.skills.create_candidate(
            skill_key="signup-form", source_execution_ids=evidence, scenario_key="newsletter"
        )
        assert candidate.skill_type == "browser"
        await client.skills.evaluate_candidate(candidate.id, passed=True, score=1.0, report="replayed by hand")
        release = await client.skills.promote_candidate(candidate.id, stage=SkillReleaseStage.CANARY)

        run = await sandbox.browser.run_skill("signup-form", include_trace=True, tags="replay")
        assert run.success and run.skill_key == "signup-form" and run.release_id == release.id
        assert run.total_steps == run.completed_steps == 5
        assert run.results[-1].stdout.strip() == "Hello, Grace"
        assert run.execution_id and run.execution_time_ms > 0 and run.trace_ref
        trace = json.loads(await sandbox.filesystem.read_file(run.trace_ref))
        assert trace["kind"] == "browser_skill_trace" and trace["release_id"] == release.id

        replay = await sandbox.get_execution(run.execution_id)
        assert replay.exec_type == "browser" and replay.tags
        assert {"replay", "skill:signup-form", f"release:{release.id}", "stage:canary"} <= set(replay.tags.split(","))
        health = await client.skills.get_release_health(release.id)
        assert health.samples == 1 and health.success_rate == 1.0

        # a stored command-list payload is the other way to define a browser skill
        payload = await client.skills.create_payload(
            payload={"commands": [f"open {BASE}/form.html", 'fill "#name" "Linus"', "click @e404"]}, kind="browser"
        )
        broken = await client.skills.create_candidate(
            skill_key="signup-broken", source_execution_ids=evidence[:1], payload_ref=payload.payload_ref
        )
        await client.skills.evaluate_candidate(broken.id, passed=True)
        broken_release = await client.skills.promote_candidate(broken.id, stage=SkillReleaseStage.STABLE)
        failed = await sandbox.browser.run_skill("signup-broken")
        assert not failed.success and failed.completed_steps == 3 and failed.results[-1].exit_code == 1
        assert failed.trace_ref is None
        bad_health = await client.skills.get_release_health(broken_release.id)
        assert bad_health.samples == 1 and bad_health.success_rate == 0.0

        with pytest.raises(NotFoundError):
            await sandbox.browser.run_skill("no-such-skill")
        await sandbox.delete()


async def test_profile_without_browser_is_capability_not_supported(server: LiveServer) -> None:
    async with BayClient(endpoint_url=server.url, access_token=ADMIN_KEY) as client:
        profiles = {p.id: p for p in (await client.list_profiles()).items}
        assert "browser" in profiles["browser-python"].capabilities
        assert "browser" not in profiles["python-default"].capabilities
        sandbox = await client.create_sandbox(profile="python-default", ttl=60)
        with pytest.raises(CapabilityNotSupportedError):
            await sandbox.browser.exec("open about:blank")
        with pytest.raises(CapabilityNotSupportedError):
            await sandbox.browser.exec_batch(["open about:blank"])
        with pytest.raises(CapabilityNotSupportedError):
            await sandbox.browser.run_skill("anything")
        await sandbox.delete()


async def test_open_after_a_failed_open_starts_from_a_settled_page(server: LiveServer) -> None:
    """After an open of an unreachable URL failed, the next valid open failed too in about half the runs
    ("interrupted by another navigation to chrome-error://chromewebdata/"): Chromium commits its error
    page a moment after the failure. Every command now starts from a settled page."""
    async with BayClient(endpoint_url=server.url, access_token=ADMIN_KEY) as client:
        sandbox = await client.create_sandbox(profile="browser-python", ttl=600)
        await _serve_site(sandbox)
        for i in range(6):
            bad = await sandbox.browser.exec("open http://127.0.0.1:9/unreachable")  # nothing listens: refused
            assert not bad.success and bad.exit_code != 0, bad
            good = await sandbox.browser.exec(f"open {BASE}/form.html")
            assert good.success, (i, good.output, good.error)
            assert (await sandbox.browser.exec("get title")).output == "Sign up\n"
        # inside a batch that goes on after an error, the next step starts settled too
        for _ in range(3):
            batch = await sandbox.browser.exec_batch(
                ["open http://127.0.0.1:9/x", f"open {BASE}/result.html?name=Bo", 'get text "#greeting"'],
                stop_on_error=False,
            )
            assert [r.exit_code != 0 for r in batch.results] == [True, False, False], batch.results
            assert batch.results[2].stdout.strip() == "Hello, Bo"
        await sandbox.delete()
