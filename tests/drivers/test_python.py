"""Python execution in a real bwrap sandbox kernel."""

from __future__ import annotations

import time

from portside.server.sandboxes.drivers import SandboxHandle

PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


async def test_state_persists_and_result(sandbox: SandboxHandle) -> None:
    r1 = await sandbox.exec_python("x = 41")
    assert r1.success and r1.output == "" and r1.result is None
    r2 = await sandbox.exec_python("x + 1")
    assert r2.success
    assert r2.result == "42"
    assert r2.data == {"text/plain": "42"}
    assert r2.execution_count == 2
    assert r2.execution_time_ms >= 0


async def test_stdout_stderr(sandbox: SandboxHandle) -> None:
    r = await sandbox.exec_python("import sys\nprint('out')\nprint('bad', file=sys.stderr)")
    assert r.success
    assert r.output == "out\n"
    assert r.stderr == "bad\n"
    assert r.error is not None and "bad" in r.error


async def test_error_traceback_without_ansi(sandbox: SandboxHandle) -> None:
    r = await sandbox.exec_python("print('before')\n1/0")
    assert not r.success
    assert r.output == "before\n"
    assert r.ename == "ZeroDivisionError"
    assert r.error is not None and "ZeroDivisionError" in r.error and "\x1b[" not in r.error
    again = await sandbox.exec_python("'fine'")
    assert again.success and again.result == "'fine'"


async def test_rich_display_data(sandbox: SandboxHandle) -> None:
    code = (
        "from IPython.display import display, Image, HTML\n"
        "import base64\n"
        f"png = base64.b64decode('{PNG_1PX}')\n"
        "display(HTML('<b>hi</b>'))\n"
        "display(Image(data=png))\n"
    )
    r = await sandbox.exec_python(code)
    assert r.success, r.error
    assert len(r.displays) == 2
    assert r.displays[0]["text/html"] == "<b>hi</b>"
    assert "image/png" in r.data
    assert r.images and r.images[0].startswith("iVBOR")


async def test_timeout_interrupts_and_kernel_survives(sandbox: SandboxHandle) -> None:
    await sandbox.exec_python("kept = 'yes'")
    started = time.monotonic()
    r = await sandbox.exec_python("import time\nprint('working')\ntime.sleep(30)", timeout=1)
    assert time.monotonic() - started < 5
    assert not r.success and r.timed_out
    assert r.output == "working\n"
    assert r.error is not None and "TimeoutError" in r.error
    nxt = await sandbox.exec_python("kept")
    assert nxt.success and nxt.result == "'yes'"


async def test_uninterruptible_code_restarts_kernel(sandbox: SandboxHandle) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    r = await sandbox.exec_python(code, timeout=0.5)
    assert r.timed_out and not r.success
    assert r.error is not None and "restarted" in r.error
    ok = await sandbox.exec_python("1 + 1")
    assert ok.success and ok.result == "2"


async def test_kernel_death_is_reported_and_recovered(sandbox: SandboxHandle) -> None:
    r = await sandbox.exec_python("import os\nos._exit(3)", timeout=10)
    assert not r.success
    assert r.error is not None and "kernel died" in r.error
    ok = await sandbox.exec_python("2 * 21")
    assert ok.success and ok.result == "42"
    assert sandbox.alive


async def test_environment_and_cwd(sandbox: SandboxHandle) -> None:
    r = await sandbox.exec_python(
        "import os\n(os.getcwd(), os.environ['HOME'], os.environ['PORTSIDE_SANDBOX_ID'], "
        "'JPY_PARENT_PID' in os.environ, os.getuid())"
    )
    assert r.result == "('/workspace', '/workspace', 'sbx_sbx', False, 1000)"


async def test_files_written_by_kernel_land_in_workspace(sandbox: SandboxHandle) -> None:
    r = await sandbox.exec_python("open('hello.txt', 'w').write('from kernel')")
    assert r.success
    assert (sandbox.workspace / "hello.txt").read_text() == "from kernel"
    (sandbox.workspace / "host.txt").write_text("from host")
    r = await sandbox.exec_python("open('/workspace/host.txt').read()")
    assert r.result == "'from host'"
    assert not (sandbox.workspace / ".ipython").exists()
