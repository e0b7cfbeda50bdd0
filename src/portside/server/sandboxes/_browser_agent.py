"""In-sandbox browser agent (runs INSIDE the sandbox; stdlib + playwright only, Python 3.10+).

The server (``portside.server.sandboxes.browser``) starts it once per sandbox session, detached with ``setsid``,
through the sandbox's own exec agent, so it lives in the sandbox's namespaces, cgroup and rlimits. Its config
comes in the ``PORTSIDE_BROWSER_AGENT`` environment variable (JSON). It connects to the unix socket the server
listens on in the workspace, sends ``{"event": "hello", "token": ...}`` and then serves JSON-lines requests:

  ``{"id": 1, "op": "exec", "cmd": "click @e2", "timeout": 30, "shot": "<path>|null"}``
  -> ``{"id": 1, "stdout": "...", "stderr": "...", "exit_code": 0, "duration_ms": 12, "url": "...", "shot": ...}``

  other ops: ``ping``, ``write_file`` (``path``, ``content``), ``shutdown``.

It owns one headless Chromium (the system one, launched through Playwright) with one browser context: pages,
cookies and element refs persist across requests until ``close``, a crash, or the server connection closing
(then it kills its whole process tree and exits). The command language is that of the agent-browser CLI
(``open``, ``snapshot``, ``click @e1``, ``fill @e2 "text"``, ``get text @e1``, ``screenshot FILE``, ``wait ...``);
see docs/browser.md. This file must not import anything from Portside: it is sent to the sandbox as source.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

OK = "\u2713"
FAIL = "\u2717"
_CONFIG: dict[str, Any] = {}

INTERACTIVE_ROLES = frozenset(
    "button link textbox checkbox radio combobox listbox menuitem menuitemcheckbox menuitemradio option "
    "searchbox slider spinbutton switch tab treeitem".split()
)
CONTENT_ROLES = frozenset(
    "heading cell gridcell columnheader rowheader listitem article region main navigation".split()
)
_KNOWN_SCHEMES = ("http:", "https:", "file:", "about:", "data:", "blob:", "chrome:", "view-source:")
_ROLE_LINE = re.compile(r'^([A-Za-z]+)(?:\s+"((?:[^"\\]|\\.)*)")?(.*)$')
_SCROLL = {"down": (0, 1), "up": (0, -1), "right": (1, 0), "left": (-1, 0)}


class CommandError(Exception):
    """A command failed; the message goes to stderr and the exit code is 1."""


@dataclass
class Ref:
    role: str
    name: str | None
    nth: int
    scope: str | None
    frame: str | None


# ---------------------------------------------------------------------------------------------- snapshots


def _split_yaml_item(rest: str) -> tuple[str, str, bool]:
    """``'role "n" [x]':`` -> (``role "n" [x]``, ``:``, quoted); unquoted items come back as they are."""
    if not rest.startswith("'"):
        return rest, "", False
    i = 1
    while i < len(rest):
        if rest[i] == "'":
            if i + 1 < len(rest) and rest[i + 1] == "'":
                i += 2
                continue
            return rest[1:i].replace("''", "'"), rest[i + 1 :], True
        i += 1
    return rest, "", False


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", r"\1", name)


def enhance_snapshot(
    tree: str,
    refs: dict[str, Ref],
    *,
    interactive: bool = False,
    compact: bool = False,
    depth: int | None = None,
    scope: str | None = None,
    frame: str | None = None,
) -> str:
    """Number interactive and named content elements ``[ref=eN]`` (agent-browser's snapshot format).

    ``nth`` of a ref is its index among the elements that ``get_by_role`` matches for it (all elements of the
    role when unnamed, those with the exact name otherwise), so every ref resolves to one element.
    """
    refs.clear()
    by_role: dict[str, int] = {}
    by_name: dict[tuple[str, str], int] = {}
    out: list[tuple[int, str, bool]] = []  # (level, line, has ref)
    flat: list[str] = []
    counter = 0
    for line in tree.splitlines():
        m = re.match(r"^(\s*)- (.*)$", line)
        if not m:
            level = (len(line) - len(line.lstrip())) // 2
            if depth is None or level <= depth:
                out.append((level, line, False))
            continue
        indent, rest = m.group(1), m.group(2)
        level = len(indent) // 2
        inner, tail, quoted = _split_yaml_item(rest)
        rm = _ROLE_LINE.match(inner)
        if rm is None or inner.startswith("/"):
            if depth is None or level <= depth:
                out.append((level, line, False))
            continue
        role, raw_name, suffix = rm.group(1), rm.group(2), rm.group(3)
        lowered = role.lower()
        name = _unescape(raw_name) if raw_name is not None else None
        role_index = by_role.get(lowered, 0)
        by_role[lowered] = role_index + 1
        name_index = 0
        if name is not None:
            name_index = by_name.get((lowered, name), 0)
            by_name[(lowered, name)] = name_index + 1
        wants_ref = lowered in INTERACTIVE_ROLES or (not interactive and lowered in CONTENT_ROLES and bool(name))
        if depth is not None and level > depth:
            continue
        if not wants_ref:
            if not interactive:
                out.append((level, line, False))
            continue
        counter += 1
        ref = f"e{counter}"
        nth = name_index if name else role_index
        refs[ref] = Ref(role=lowered, name=name or None, nth=nth, scope=scope, frame=frame)
        label = role + (f' "{raw_name}"' if raw_name is not None else "") + f" [ref={ref}]"
        if name and name_index > 0:
            label += f" [nth={name_index}]"
        if interactive:
            attrs = " ".join(re.findall(r"\[[^\]]*\]", suffix.split(":", 1)[0]))
            flat.append(f"- {label}" + (f" {attrs}" if attrs else ""))
            continue
        new_inner = label + suffix
        text = f"'{new_inner.replace(chr(39), chr(39) * 2)}'{tail}" if quoted else new_inner
        out.append((level, f"{indent}- {text}", True))
    if interactive:
        return "\n".join(flat) or "(no interactive elements)"
    if compact:  # keep lines with a ref or text, and the structure leading to refs
        kept: list[str] = []
        for i, (level, line, has_ref) in enumerate(out):
            body = line.strip()
            has_text = ": " in body and not body.endswith(":")
            leads = False
            for later_level, _, later_ref in out[i + 1 :]:
                if later_level <= level:
                    break
                if later_ref:
                    leads = True
                    break
            if has_ref or has_text or leads:
                kept.append(line)
        return "\n".join(kept) or "(empty)"
    return "\n".join(line for _, line, _ in out) or "(empty)"


def _workspace() -> str:
    return os.environ.get("PORTSIDE_WORKSPACE") or "/workspace"


def parse_ref(arg: str) -> str | None:
    """``@e1`` / ``ref=e1`` / ``e1`` -> ``e1``; anything else is a selector."""
    if arg.startswith("@"):
        return arg[1:]
    if arg.startswith("ref="):
        return arg[4:]
    if re.fullmatch(r"e\d+", arg):
        return arg
    return None


def normalize_url(url: str, workspace: str = "/workspace") -> str:
    """agent-browser's URL rules (no scheme: https://, localhost: http://), plus workspace files.

    An absolute path or an existing relative path becomes a ``file://`` URL; ``/workspace/...`` is mapped to
    ``workspace`` when the sandbox sees its workspace elsewhere (the unisolated process driver).
    """
    lowered = url.lower()
    if lowered.startswith("file:///workspace/") and workspace != "/workspace":
        return "file://" + workspace + url[len("file:///workspace") :]
    if lowered.startswith(_KNOWN_SCHEMES) or lowered.startswith("javascript:"):
        return url
    if url.startswith("/workspace/") and workspace != "/workspace":
        return "file://" + workspace + url[len("/workspace") :]
    if url.startswith("/"):
        return "file://" + url
    host = lowered.split("/", 1)[0]
    if host.startswith(("localhost", "127.", "[::1]", "0.0.0.0")):
        return "http://" + url
    if os.path.exists(url.split("?", 1)[0].split("#", 1)[0]):
        return "file://" + os.path.join(os.getcwd(), url)
    return "https://" + url


def _opts(args: list[str], spec: dict[str, tuple[str, bool]]) -> tuple[list[str], dict[str, Any]]:
    """Split ``args`` into positionals and flags; ``spec`` maps a flag to (name, takes a value)."""
    pos: list[str] = []
    found: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        key, _, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if key in spec:
            name, takes = spec[key]
            if takes:
                if inline:
                    found[name] = inline
                elif i + 1 < len(args):
                    i += 1
                    found[name] = args[i]
                else:
                    raise CommandError(f"{key} needs a value")
            else:
                found[name] = True
        else:
            pos.append(arg)
        i += 1
    return pos, found


def _need(args: list[str], n: int, usage: str) -> None:
    if len(args) < n:
        raise CommandError(f"Usage: {usage}")


# ---------------------------------------------------------------------------------------------- the browser


class Browser:
    """One Chromium with one context; the state every command works on."""

    def __init__(self) -> None:
        self.pw: Any = None
        self.browser: Any = None
        self.context: Any = None
        self.pages: list[Any] = []
        self.active = 0
        self.refs: dict[str, Ref] = {}
        self.frame: str | None = None
        self.timeout_ms = 30000.0
        self.console: deque[dict[str, Any]] = deque(maxlen=1000)
        self.errors: deque[dict[str, Any]] = deque(maxlen=200)
        self.requests: deque[dict[str, Any]] = deque(maxlen=500)
        self.dialog_policy: tuple[str, str | None] | None = None
        self.last_dialog: dict[str, Any] | None = None
        self.downloads: list[str] = []
        self.explicit_download = False
        self._req_seq = 0
        # pages whose last main-frame navigation failed: Chromium commits its error page
        # (chrome-error://chromewebdata/) a moment later, which would interrupt the next navigation
        self.unsettled: set[Any] = set()

    # -- lifecycle
    @property
    def running(self) -> bool:
        return self.browser is not None and self.browser.is_connected()

    async def launch(self) -> None:
        if self.running:
            return
        await self.close()
        from playwright.async_api import async_playwright

        self.pw = await async_playwright().start()
        launch: dict[str, Any] = {
            "executable_path": _CONFIG["executable"],
            "headless": True,
            "args": list(_CONFIG.get("args") or []),
            "timeout": 60000,
        }
        if _CONFIG.get("proxy_server"):
            launch["proxy"] = {"server": _CONFIG["proxy_server"]}
        self.browser = await self.pw.chromium.launch(**launch)
        self.context = await self.browser.new_context(
            accept_downloads=True, viewport={"width": 1280, "height": 720}, ignore_https_errors=False
        )
        self.context.on("page", self._on_page)
        page = await self.context.new_page()
        if page not in self.pages:
            self._on_page(page)
        self.active = 0

    async def close(self) -> None:
        browser, pw = self.browser, self.pw
        self.browser = self.context = self.pw = None
        self.pages = []
        self.unsettled.clear()
        self.refs.clear()
        self.frame = None
        if browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.close(), 5)
        if pw is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pw.stop(), 5)

    def _on_page(self, page: Any) -> None:
        if page in self.pages:
            return
        self.pages.append(page)
        page.on("console", lambda m: self.console.append({"type": m.type, "text": m.text}))
        page.on("pageerror", lambda e: self.errors.append({"message": str(e)}))
        page.on("dialog", self._on_dialog)
        page.on("download", self._on_download)
        page.on("request", self._on_request)
        page.on("response", self._on_response)
        page.on("requestfailed", lambda req: self._on_request_failed(page, req))
        page.on("close", self._on_close)

    def _on_request_failed(self, page: Any, req: Any) -> None:
        with contextlib.suppress(Exception):
            aborted = "ERR_ABORTED" in str(req.failure or "")  # replaced or a download: no error page follows
            if req.is_navigation_request() and req.frame == page.main_frame and not aborted:
                self.unsettled.add(page)

    async def settle(self, budget_ms: float = 2000) -> None:
        """Let the active page finish a failed navigation, so a command starts from a settled page.

        After a main-frame navigation failed, Chromium commits its error page a moment later; wait
        (at most ``budget_ms``) until it has committed and loaded. Immediate otherwise; never raises.
        """
        if not self.running or not self.pages:
            return
        page = self.pages[min(self.active, len(self.pages) - 1)]
        if page not in self.unsettled:
            return
        with contextlib.suppress(Exception):
            await page.wait_for_url(lambda url: url.startswith("chrome-error://"), timeout=budget_ms)
        self.unsettled.discard(page)

    def _on_close(self, page: Any) -> None:
        self.unsettled.discard(page)
        if page in self.pages:
            idx = self.pages.index(page)
            self.pages.remove(page)
            if self.active >= idx and self.active > 0:
                self.active -= 1

    def _on_request(self, req: Any) -> None:
        self._req_seq += 1
        self.requests.append(
            {"requestId": str(self._req_seq), "method": req.method, "url": req.url, "resourceType": req.resource_type}
        )

    def _on_response(self, resp: Any) -> None:
        for entry in reversed(self.requests):
            if entry["url"] == resp.url and "status" not in entry:
                entry["status"] = resp.status
                break

    async def _on_dialog(self, dialog: Any) -> None:
        self.last_dialog = {"type": dialog.type, "message": dialog.message, "defaultPrompt": dialog.default_value}
        policy, self.dialog_policy = self.dialog_policy, None
        with contextlib.suppress(Exception):
            if policy is None:
                if dialog.type in ("alert", "beforeunload"):
                    await dialog.accept()
                else:
                    await dialog.dismiss()
            elif policy[0] == "accept":
                await dialog.accept(policy[1] or "")
            else:
                await dialog.dismiss()

    async def _on_download(self, download: Any) -> None:
        if self.explicit_download:
            return  # the download command saves it where it was asked to
        name = os.path.basename(download.suggested_filename or "download") or "download"
        path = os.path.join("downloads", name)
        with contextlib.suppress(Exception):
            os.makedirs("downloads", exist_ok=True)
            await download.save_as(path)
            self.downloads.append(path)

    # -- targets
    async def page(self) -> Any:
        if not self.running:
            await self.launch()
        if not self.pages:
            self._on_page(await self.context.new_page())
            self.active = 0
        self.active = min(self.active, len(self.pages) - 1)
        return self.pages[self.active]

    async def root(self) -> Any:
        page = await self.page()
        return page.frame_locator(self.frame) if self.frame else page

    async def locator(self, sel: str) -> Any:
        ref = parse_ref(sel)
        page = await self.page()
        if ref is None:
            return (await self.root()).locator(sel)
        info = self.refs.get(ref)
        if info is None:
            raise CommandError(f"Unknown ref @{ref}: take a snapshot first (refs are renumbered by each snapshot)")
        base: Any = page.frame_locator(info.frame) if info.frame else page
        if info.scope:
            base = base.locator(info.scope)
        loc = base.get_by_role(info.role, name=info.name, exact=True) if info.name else base.get_by_role(info.role)
        return loc.nth(info.nth)

    async def nav(self) -> dict[str, Any]:
        page = await self.page()
        return {"url": page.url, "title": await page.title()}


# ---------------------------------------------------------------------------------------------- commands


class Commands:
    """agent-browser's commands, each returning (action, data) for rendering."""

    def __init__(self, b: Browser) -> None:
        self.b = b
        self.table: dict[str, Any] = {
            "open": self.open, "goto": self.open, "navigate": self.open,
            "back": self.back, "forward": self.forward, "reload": self.reload,
            "close": self.close, "quit": self.close, "exit": self.close,
            "click": self.click, "dblclick": self.dblclick, "focus": self.focus, "hover": self.hover,
            "type": self.type_, "fill": self.fill, "clear": self.clear,
            "press": self.press, "key": self.press, "keydown": self.keydown, "keyup": self.keyup,
            "select": self.select, "check": self.check, "uncheck": self.uncheck,
            "scroll": self.scroll, "scrollintoview": self.scrollintoview, "scrollinto": self.scrollintoview,
            "drag": self.drag, "upload": self.upload, "download": self.download,
            "snapshot": self.snapshot, "get": self.get, "is": self.is_,
            "screenshot": self.screenshot, "pdf": self.pdf, "wait": self.wait,
            "eval": self.eval, "evaluate": self.eval, "find": self.find, "mouse": self.mouse,
            "set": self.set, "cookies": self.cookies, "storage": self.storage, "tab": self.tab,
            "frame": self.frame, "dialog": self.dialog, "console": self.console, "errors": self.errors_,
            "network": self.network,
        }  # fmt: skip

    @property
    def t(self) -> float:
        return self.b.timeout_ms

    # -- navigation
    async def open(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        pos, _ = _opts(a, {"--headed": ("headed", False)})
        _need(pos, 1, "open <url>")
        page = await self.b.page()
        resp = await page.goto(normalize_url(pos[0], _workspace()), timeout=self.t, wait_until="load")
        self.b.refs.clear()
        self.b.frame = None
        data = await self.b.nav()
        if resp is not None and resp.status >= 400:
            data["status"] = resp.status
        return "navigate", data

    async def back(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        await (await self.b.page()).go_back(timeout=self.t)
        return "back", await self.b.nav()

    async def forward(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        await (await self.b.page()).go_forward(timeout=self.t)
        return "forward", await self.b.nav()

    async def reload(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        await (await self.b.page()).reload(timeout=self.t)
        return "reload", await self.b.nav()

    async def close(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        await self.b.close()
        return "close", {"closed": True}

    # -- interaction
    async def _one(self, a: list[str], usage: str) -> Any:
        _need(a, 1, usage)
        return await self.b.locator(a[0])

    async def click(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        pos, f = _opts(a, {"--new-tab": ("new_tab", False), "--button": ("button", True)})
        loc = await self._one(pos, "click <selector>")
        if f.get("new_tab"):
            await loc.click(timeout=self.t, modifiers=["Control"])
        else:
            await loc.click(timeout=self.t, button=f.get("button", "left"))
        return "click", {"clicked": True}

    async def dblclick(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        await (await self._one(a, "dblclick <selector>")).dblclick(timeout=self.t)
        return "dblclick", {"clicked": True}

    async def focus(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        await (await self._one(a, "focus <selector>")).focus(timeout=self.t)
        return "focus", {}

    async def hover(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        await (await self._one(a, "hover <selector>")).hover(timeout=self.t)
        return "hover", {}

    async def type_(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 2, "type <selector> <text>")
        await (await self.b.locator(a[0])).press_sequentially(" ".join(a[1:]), timeout=self.t)
        return "type", {}

    async def fill(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 2, "fill <selector> <text>")
        await (await self.b.locator(a[0])).fill(" ".join(a[1:]), timeout=self.t)
        return "fill", {}

    async def clear(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        await (await self._one(a, "clear <selector>")).fill("", timeout=self.t)
        return "clear", {}

    async def press(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 1, "press <key>  |  press <selector> <key>")
        if len(a) >= 2:
            await (await self.b.locator(a[0])).press(a[1], timeout=self.t)
        else:
            await (await self.b.page()).keyboard.press(a[0])
        return "press", {}

    async def keydown(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 1, "keydown <key>")
        await (await self.b.page()).keyboard.down(a[0])
        return "keydown", {}

    async def keyup(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 1, "keyup <key>")
        await (await self.b.page()).keyboard.up(a[0])
        return "keyup", {}

    async def select(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 2, "select <selector> <value...>")
        chosen = await (await self.b.locator(a[0])).select_option(a[1:], timeout=self.t)
        return "select", {"selected": chosen}

    async def check(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        await (await self._one(a, "check <selector>")).check(timeout=self.t)
        return "check", {}

    async def uncheck(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        await (await self._one(a, "uncheck <selector>")).uncheck(timeout=self.t)
        return "uncheck", {}

    async def scroll(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        pos, f = _opts(a, {"--selector": ("selector", True), "-s": ("selector", True)})
        direction = (pos[0] if pos else "down").lower()
        if direction not in _SCROLL:
            raise CommandError("Usage: scroll [up|down|left|right] [pixels]")
        amount = int(pos[1]) if len(pos) > 1 else 300
        dx, dy = (v * amount for v in _SCROLL[direction])
        page = await self.b.page()
        if f.get("selector"):
            await (await self.b.locator(f["selector"])).hover(timeout=self.t)
        await page.mouse.wheel(dx, dy)
        return "scroll", {}

    async def scrollintoview(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        await (await self._one(a, "scrollintoview <selector>")).scroll_into_view_if_needed(timeout=self.t)
        return "scrollintoview", {}

    async def drag(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 2, "drag <source> <target>")
        await (await self.b.locator(a[0])).drag_to(await self.b.locator(a[1]), timeout=self.t)
        return "drag", {}

    async def upload(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 2, "upload <selector> <file...>")
        await (await self.b.locator(a[0])).set_input_files(a[1:], timeout=self.t)
        return "upload", {"files": a[1:]}

    async def download(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 2, "download <selector> <path>")
        page = await self.b.page()
        loc = await self.b.locator(a[0])
        self.b.explicit_download = True
        try:
            async with page.expect_download(timeout=self.t) as info:
                await loc.click(timeout=self.t)
            dl = await info.value
        finally:
            self.b.explicit_download = False
        parent = os.path.dirname(a[1])
        if parent:
            os.makedirs(parent, exist_ok=True)
        await dl.save_as(a[1])
        return "download", {"path": a[1], "suggestedFilename": dl.suggested_filename}

    # -- information
    async def snapshot(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _, f = _opts(
            a,
            {
                "-i": ("interactive", False), "--interactive": ("interactive", False),
                "-c": ("compact", False), "--compact": ("compact", False),
                "-d": ("depth", True), "--depth": ("depth", True),
                "-s": ("selector", True), "--selector": ("selector", True),
            },
        )  # fmt: skip
        root = await self.b.root()
        scope = f.get("selector")
        tree = await (root.locator(scope) if scope else root.locator(":root")).aria_snapshot(timeout=self.t)
        text = enhance_snapshot(
            tree or "",
            self.b.refs,
            interactive=bool(f.get("interactive")),
            compact=bool(f.get("compact")),
            depth=int(f["depth"]) if "depth" in f else None,
            scope=scope,
            frame=self.b.frame,
        )
        page = await self.b.page()
        return "snapshot", {
            "snapshot": text,
            "refs": {k: v.__dict__ for k, v in self.b.refs.items()},
            "origin": page.url,
        }

    async def get(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 1, "get text|html|value|attr|title|url|count|box <selector>")
        what, rest = a[0], a[1:]
        page = await self.b.page()
        if what == "title":
            return "title", {"title": await page.title()}
        if what == "url":
            return "url", {"url": page.url}
        loc = await self._one(rest, f"get {what} <selector>")
        if what == "text":
            return "gettext", {"text": await loc.inner_text(timeout=self.t), "origin": page.url}
        if what == "html":
            return "innerhtml", {"html": await loc.inner_html(timeout=self.t), "origin": page.url}
        if what == "value":
            return "inputvalue", {"value": await loc.input_value(timeout=self.t)}
        if what == "attr":
            _need(rest, 2, "get attr <selector> <name>")
            value = await loc.get_attribute(rest[1], timeout=self.t)
            return "getattribute", {"value": "" if value is None else value}
        if what == "count":
            return "count", {"count": await loc.count()}
        if what == "box":
            box = await loc.bounding_box(timeout=self.t)
            if box is None:
                raise CommandError(f"Element {rest[0]} is not visible")
            return "boundingbox", dict(box)
        raise CommandError(f"Unknown get subcommand: {what}")

    async def is_(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 2, "is visible|enabled|checked <selector>")
        loc = await self.b.locator(a[1])
        if a[0] == "visible":
            return "isvisible", {"visible": await loc.is_visible()}
        if a[0] == "enabled":
            return "isenabled", {"enabled": await loc.is_enabled(timeout=self.t)}
        if a[0] == "checked":
            return "ischecked", {"checked": await loc.is_checked(timeout=self.t)}
        raise CommandError(f"Unknown is subcommand: {a[0]}")

    # -- capture
    async def screenshot(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        pos, f = _opts(a, {"--full": ("full", False), "-f": ("full", False)})
        page = await self.b.page()
        sel = None
        if len(pos) >= 2:
            sel, path = pos[0], pos[1]
        elif pos:
            path = pos[0]
        else:
            path = os.path.join(
                "screenshots", time.strftime("screenshot-%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1000000}.png"
            )
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        if sel is not None:
            await (await self.b.locator(sel)).screenshot(path=path, timeout=self.t)
        else:
            await page.screenshot(path=path, full_page=bool(f.get("full")), timeout=self.t)
        return "screenshot", {"path": path}

    async def pdf(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 1, "pdf <path>")
        parent = os.path.dirname(a[0])
        if parent:
            os.makedirs(parent, exist_ok=True)
        await (await self.b.page()).pdf(path=a[0])
        return "pdf", {"path": a[0]}

    async def wait(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        pos, f = _opts(
            a,
            {
                "--text": ("text", True), "--url": ("url", True), "--load": ("load", True),
                "--fn": ("fn", True), "--state": ("state", True),
            },
        )  # fmt: skip
        page = await self.b.page()
        if "text" in f:
            await page.get_by_text(f["text"]).first.wait_for(timeout=self.t)
        elif "url" in f:
            await page.wait_for_url(f["url"], timeout=self.t)
        elif "load" in f:
            await page.wait_for_load_state(f["load"] or "load", timeout=self.t)
        elif "fn" in f:
            await page.wait_for_function(f["fn"], timeout=self.t)
        elif pos and re.fullmatch(r"\d+", pos[0]):
            await asyncio.sleep(int(pos[0]) / 1000)
        elif pos:
            await (await self.b.locator(pos[0])).first.wait_for(state=f.get("state", "visible"), timeout=self.t)
        else:
            raise CommandError("Usage: wait <selector>|<ms>|--text <t>|--url <pattern>|--load <state>|--fn <js>")
        return "wait", {}

    async def eval(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 1, "eval <javascript>")
        page = await self.b.page()
        result = await page.evaluate(" ".join(a))
        return "evaluate", {"result": result, "origin": page.url}

    async def find(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        pos, f = _opts(a, {"--name": ("name", True), "--exact": ("exact", False)})
        _need(pos, 2, "find role|text|label|placeholder|alt|title|testid|first|last|nth <value> <action> [text]")
        kind = pos[0]
        root = await self.b.root()
        exact = bool(f.get("exact"))
        rest = pos[2:]
        if kind == "role":
            name = f.get("name")
            loc = root.get_by_role(pos[1], name=name, exact=exact) if name else root.get_by_role(pos[1])
        elif kind == "text":
            loc = root.get_by_text(pos[1], exact=exact)
        elif kind == "label":
            loc = root.get_by_label(pos[1], exact=exact)
        elif kind == "placeholder":
            loc = root.get_by_placeholder(pos[1], exact=exact)
        elif kind == "alt":
            loc = root.get_by_alt_text(pos[1], exact=exact)
        elif kind == "title":
            loc = root.get_by_title(pos[1], exact=exact)
        elif kind == "testid":
            loc = root.get_by_test_id(pos[1])
        elif kind in ("first", "last"):
            loc = (await self.b.locator(pos[1])).first if kind == "first" else (await self.b.locator(pos[1])).last
        elif kind == "nth":
            _need(pos, 3, "find nth <n> <selector> <action>")
            loc = (await self.b.locator(pos[2])).nth(int(pos[1]))
            rest = pos[3:]
        else:
            raise CommandError(f"Unknown locator kind: {kind}")
        if kind not in ("first", "last", "nth"):
            loc = loc.first
        action = rest[0] if rest else "click"
        value = " ".join(rest[1:])
        if action == "click":
            await loc.click(timeout=self.t)
        elif action == "fill":
            await loc.fill(value, timeout=self.t)
        elif action == "type":
            await loc.press_sequentially(value, timeout=self.t)
        elif action == "hover":
            await loc.hover(timeout=self.t)
        elif action == "focus":
            await loc.focus(timeout=self.t)
        elif action == "check":
            await loc.check(timeout=self.t)
        elif action == "uncheck":
            await loc.uncheck(timeout=self.t)
        elif action == "text":
            return "gettext", {"text": await loc.inner_text(timeout=self.t)}
        else:
            raise CommandError(f"Unknown find action: {action}")
        return "find", {}

    async def mouse(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 1, "mouse move <x> <y> | down [button] | up [button] | wheel <dy> [dx]")
        m = (await self.b.page()).mouse
        if a[0] == "move":
            _need(a, 3, "mouse move <x> <y>")
            await m.move(float(a[1]), float(a[2]))
        elif a[0] == "down":
            await m.down(button=a[1] if len(a) > 1 else "left")
        elif a[0] == "up":
            await m.up(button=a[1] if len(a) > 1 else "left")
        elif a[0] == "wheel":
            _need(a, 2, "mouse wheel <dy> [dx]")
            await m.wheel(float(a[2]) if len(a) > 2 else 0.0, float(a[1]))
        else:
            raise CommandError(f"Unknown mouse subcommand: {a[0]}")
        return "mouse", {}

    async def set(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 2, "set viewport <w> <h> | media dark|light | offline on|off | headers <json> | credentials <u> <p>")
        page = await self.b.page()
        ctx = self.b.context
        what = a[0]
        if what == "viewport":
            _need(a, 3, "set viewport <width> <height>")
            await page.set_viewport_size({"width": int(a[1]), "height": int(a[2])})
        elif what == "media":
            await page.emulate_media(color_scheme=a[1])
        elif what == "offline":
            await ctx.set_offline(a[1].lower() in ("on", "true", "1"))
        elif what == "headers":
            await ctx.set_extra_http_headers({str(k): str(v) for k, v in json.loads(" ".join(a[1:])).items()})
        elif what == "credentials":
            _need(a, 3, "set credentials <username> <password>")
            await ctx.set_http_credentials({"username": a[1], "password": a[2]})
        elif what == "geo":
            _need(a, 3, "set geo <latitude> <longitude>")
            await ctx.grant_permissions(["geolocation"])
            await ctx.set_geolocation({"latitude": float(a[1]), "longitude": float(a[2])})
        else:
            raise CommandError(f"Unknown set subcommand: {what}")
        return "set", {}

    async def cookies(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        page = await self.b.page()
        ctx = self.b.context
        if not a or a[0] == "get":
            return "cookies_get", {"cookies": await ctx.cookies()}
        if a[0] == "set":
            _need(a, 3, "cookies set <name> <value>")
            await ctx.add_cookies([{"name": a[1], "value": a[2], "url": page.url}])
            return "cookies_set", {}
        if a[0] == "clear":
            await ctx.clear_cookies()
            return "cookies_clear", {"cleared": True}
        raise CommandError(f"Unknown cookies subcommand: {a[0]}")

    async def storage(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 1, "storage local|session [key] | set <key> <value> | clear")
        area = {"local": "localStorage", "session": "sessionStorage"}.get(a[0])
        if area is None:
            raise CommandError("Usage: storage local|session ...")
        page = await self.b.page()
        rest = a[1:]
        if rest and rest[0] == "set":
            _need(rest, 3, f"storage {a[0]} set <key> <value>")
            await page.evaluate(f"([k, v]) => {area}.setItem(k, v)", [rest[1], " ".join(rest[2:])])
            return "storage_set", {}
        if rest and rest[0] == "clear":
            await page.evaluate(f"() => {area}.clear()")
            return "storage_clear", {}
        if rest:
            value = await page.evaluate(f"k => {area}.getItem(k)", rest[0])
            return "storage_get", {"key": rest[0], "value": value}
        data = await page.evaluate(f"() => Object.fromEntries(Object.entries({area}))")
        return "storage_get", {"data": data}

    async def tab(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        await self.b.page()
        if not a or a[0] == "list":
            tabs = [
                {"tabId": str(i), "title": await p.title(), "url": p.url, "active": i == self.b.active}
                for i, p in enumerate(self.b.pages)
            ]
            return "tab_list", {"tabs": tabs}
        if a[0] == "new":
            page = await self.b.context.new_page()
            self.b._on_page(page)
            self.b.active = self.b.pages.index(page)
            self.b.refs.clear()
            if len(a) > 1:
                await page.goto(normalize_url(a[1], _workspace()), timeout=self.t)
            return "tab_new", {"tabId": str(self.b.active), "total": len(self.b.pages)}
        if a[0] == "close":
            idx = int(a[1]) if len(a) > 1 else self.b.active
            if not 0 <= idx < len(self.b.pages):
                raise CommandError(f"No tab {idx}")
            await self.b.pages[idx].close()
            self.b.refs.clear()
            return "tab_close", {"closed": True, "tabId": str(idx)}
        idx = int(a[0])
        if not 0 <= idx < len(self.b.pages):
            raise CommandError(f"No tab {idx}")
        self.b.active = idx
        self.b.refs.clear()
        await self.b.pages[idx].bring_to_front()
        return "tab_switch", {"tabId": str(idx), "url": self.b.pages[idx].url}

    async def frame(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        _need(a, 1, "frame <selector> | frame main")
        self.b.frame = None if a[0] == "main" else a[0]
        self.b.refs.clear()
        return "frame", {}

    async def dialog(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        if not a:
            if self.b.last_dialog is None:
                return "dialog", {"hasDialog": False}
            return "dialog", {"hasDialog": True, **self.b.last_dialog}
        if a[0] == "accept":
            self.b.dialog_policy = ("accept", " ".join(a[1:]) or None)
        elif a[0] == "dismiss":
            self.b.dialog_policy = ("dismiss", None)
        else:
            raise CommandError("Usage: dialog [accept [text] | dismiss]")
        return "dialog_set", {}

    async def console(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        if "--clear" in a:
            self.b.console.clear()
            return "console", {"cleared": True}
        return "console", {"messages": list(self.b.console)}

    async def errors_(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        if "--clear" in a:
            self.b.errors.clear()
            return "errors", {"cleared": True}
        return "errors", {"errors": list(self.b.errors)}

    async def network(self, a: list[str]) -> tuple[str, dict[str, Any]]:
        pos, f = _opts(a, {"--clear": ("clear", False), "--filter": ("filter", True),
                           "--abort": ("abort", False), "--body": ("body", True)})  # fmt: skip
        _need(pos, 1, "network requests [--filter s] [--clear] | route <url> [--abort|--body <json>] | unroute [url]")
        page = await self.b.page()
        if pos[0] == "requests":
            if f.get("clear"):
                self.b.requests.clear()
                return "network_requests", {"cleared": True}
            reqs = [r for r in self.b.requests if f.get("filter", "") in r["url"]]
            return "network_requests", {"requests": reqs}
        if pos[0] == "route":
            _need(pos, 2, "network route <url> [--abort|--body <json>]")
            body = f.get("body")

            async def handler(route: Any) -> None:
                if f.get("abort"):
                    await route.abort()
                elif body is not None:
                    await route.fulfill(status=200, body=body, content_type="application/json")
                else:
                    await route.continue_()

            await page.route(pos[1], handler)
            return "route", {}
        if pos[0] == "unroute":
            if len(pos) > 1:
                await page.unroute(pos[1])
            else:
                await page.unroute_all()
            return "unroute", {}
        raise CommandError(f"Unknown network subcommand: {pos[0]}")


# ---------------------------------------------------------------------------------------------- rendering


def render(action: str, data: dict[str, Any]) -> str:
    """Human output, following the agent-browser CLI's conventions."""
    if action == "dialog" and "hasDialog" in data:
        if not data["hasDialog"]:
            return f"{OK} No dialog is currently open"
        return f'JavaScript {data.get("type")} dialog was shown: "{data.get("message", "")}"'
    if action == "tab_switch":
        return f"{OK} Switched to tab [{data['tabId']}] ({data.get('url', '')})"
    if "url" in data and "title" in data:
        return f"{OK} {data['title']}\n  {data['url']}"
    if "url" in data:
        return str(data["url"])
    if "snapshot" in data:
        return str(data["snapshot"])
    if "title" in data:
        return str(data["title"])
    for key in ("text", "html", "value"):
        if key in data and action != "storage_get":
            return "" if data[key] is None else str(data[key])
    if "count" in data:
        return str(data["count"])
    if action == "boundingbox":
        return "\n".join(f"{k + ':':<7} {data.get(k, 0)}" for k in ("x", "y", "width", "height"))
    for key in ("visible", "enabled", "checked"):
        if key in data:
            return "true" if data[key] else "false"
    if "result" in data:
        return json.dumps(data["result"], indent=2, ensure_ascii=False)
    if action == "storage_get":
        if "data" in data:
            return "\n".join(f"{k}: {v}" for k, v in data["data"].items()) or "No storage entries"
        return f"{data['key']}: {data['value']}"
    if "tabs" in data:
        lines = []
        for tab in data["tabs"]:
            marker = "\u2192" if tab["active"] else " "
            lines.append(f"{marker} [{tab['tabId']}] {tab['title']} - {tab['url']}")
        return "\n".join(lines)
    if action == "tab_new":
        return f"{OK} Tab opened [{data['tabId']}] ({data['total']} total)"
    if "messages" in data:
        return "\n".join(f"[{m['type']}] {m['text']}" for m in data["messages"])
    if "errors" in data:
        return "\n".join(f"{FAIL} {e['message']}" for e in data["errors"])
    if "cookies" in data:
        return "\n".join(f"{c['name']}={c['value']}" for c in data["cookies"])
    if "requests" in data:
        if not data["requests"]:
            return "No requests captured"
        return "\n".join(
            f"[{r['requestId']}] {r['method']} {r['url']} ({r['resourceType']})"
            + (f" {r['status']}" if "status" in r else "")
            for r in data["requests"]
        )
    if data.get("cleared"):
        return f"{OK} " + {"cookies_clear": "Cookies cleared", "console": "Console log cleared",
                           "errors": "Errors cleared"}.get(action, "Request log cleared")  # fmt: skip
    if "closed" in data:
        if action == "tab_close":
            return f"{OK} Tab [{data.get('tabId')}] closed"
        return f"{OK} Browser closed"
    if "path" in data:
        label = {"screenshot": "Screenshot saved to", "pdf": "PDF saved to", "download": "Download saved to"}
        return f"{OK} {label.get(action, 'Saved to')} {data['path']}"
    return f"{OK} Done"


# ---------------------------------------------------------------------------------------------- process


_GLOBAL_FLAGS = {"--json": False, "--headed": False, "--headless": False, "--session": True, "--profile": True}


def split_command(cmd: str) -> tuple[list[str], bool]:
    """Tokens of one command (without an ``agent-browser`` prefix) and whether ``--json`` was asked for."""
    try:
        tokens = shlex.split(cmd)
    except ValueError as exc:
        raise CommandError(f"Cannot parse command: {exc}") from None
    if tokens and tokens[0] == "agent-browser":
        tokens = tokens[1:]
    out: list[str] = []
    as_json = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _GLOBAL_FLAGS:
            as_json = as_json or tok == "--json"
            i += 2 if _GLOBAL_FLAGS[tok] else 1
            continue
        out.append(tok)
        i += 1
    return out, as_json


class Agent:
    """Serves one server connection."""

    def __init__(self) -> None:
        self.browser = Browser()
        self.commands = Commands(self.browser)
        self.lock = asyncio.Lock()
        self.writer: asyncio.StreamWriter | None = None

    def send(self, msg: dict[str, Any]) -> None:
        assert self.writer is not None
        self.writer.write(json.dumps(msg, separators=(",", ":"), default=str).encode() + b"\n")

    async def run_command(self, cmd: str, timeout: float) -> tuple[str, str, int]:
        as_json = False
        try:
            tokens, as_json = split_command(cmd)
            if not tokens:
                raise CommandError("Empty command")
            handler = self.commands.table.get(tokens[0])
            if handler is None:
                raise CommandError(f"Unknown command: {tokens[0]}")
            self.browser.timeout_ms = max(1.0, timeout * 1000 - 250)
            await self.browser.settle(min(2000.0, self.browser.timeout_ms / 4))
            action, data = await handler(tokens[1:])
        except Exception as exc:  # every failure is a command result, never a crash
            await self.browser.settle(min(2000.0, self.browser.timeout_ms / 4))  # e.g. a failed open's error page
            message = _error_text(exc)
            if as_json:
                return json.dumps({"success": False, "data": None, "error": message}) + "\n", "", 1
            return "", f"{FAIL} {message}\n", 1
        if as_json:
            return json.dumps({"success": True, "data": data, "error": None}, default=str) + "\n", "", 0
        return render(action, data) + "\n", "", 0

    async def op_exec(self, req: dict[str, Any]) -> dict[str, Any]:
        timeout = float(req.get("timeout") or 30)
        started = time.monotonic()
        try:  # a command queued behind another one spends its own time budget waiting
            await asyncio.wait_for(self.lock.acquire(), timeout)
        except asyncio.TimeoutError:
            return {
                "stdout": "",
                "stderr": f"{FAIL} Timed out after {timeout:g}s waiting for the previous command\n",
                "exit_code": -1,
                "duration_ms": int((time.monotonic() - started) * 1000),
            }
        try:
            remaining = max(0.001, timeout - (time.monotonic() - started))
            try:
                stdout, stderr, code = await asyncio.wait_for(self.run_command(str(req["cmd"]), remaining), remaining)
            except asyncio.TimeoutError:
                stdout, stderr, code = "", f"{FAIL} Command timed out after {timeout:g}s\n", -1
            reply: dict[str, Any] = {
                "stdout": stdout,
                "stderr": stderr,
                "exit_code": code,
                "duration_ms": int((time.monotonic() - started) * 1000),
            }
            page = self.browser.pages[self.browser.active] if self.browser.running and self.browser.pages else None
            reply["url"] = page.url if page is not None else None
            shot = req.get("shot")
            if shot and page is not None:
                with contextlib.suppress(Exception):
                    await page.screenshot(path=shot, timeout=5000)
                    reply["shot"] = shot
        finally:
            self.lock.release()
        return reply

    async def handle(self, req: dict[str, Any]) -> None:
        op = req.get("op")
        try:
            if op == "exec":
                reply = await self.op_exec(req)
            elif op == "ping":
                reply = {"ok": True, "browser": self.browser.running}
            elif op == "write_file":
                await asyncio.to_thread(_write_text, str(req["path"]), str(req["content"]))
                reply = {"ok": True}
            elif op == "shutdown":
                reply = {"ok": True}
            else:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as exc:  # report, never die
            reply = {"ok": False, "error": _error_text(exc)}
        reply["id"] = req.get("id")
        self.send(reply)
        if op == "shutdown":
            raise SystemExit(0)

    async def serve(self) -> None:
        if _CONFIG.get("proxy_socket"):
            # Egress goes through the server's filtering proxy: a loopback port here forwards to its socket.
            server = await asyncio.start_server(_forward, "127.0.0.1", 0)
            _CONFIG["proxy_server"] = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        reader, self.writer = await asyncio.open_unix_connection(_CONFIG["socket"], limit=64 * 1024 * 1024)
        self.send({"event": "hello", "token": _CONFIG.get("token"), "pid": os.getpid()})
        tasks: set[asyncio.Task[None]] = set()
        while True:
            line = await reader.readline()
            if not line:
                break
            try:
                req = json.loads(line)
            except ValueError:
                continue
            task = asyncio.get_running_loop().create_task(self.handle(req))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        # The server went away (or the sandbox is stopping): take the browser down with us.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.browser.close(), 3)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        up_reader, up_writer = await asyncio.open_unix_connection(_CONFIG["proxy_socket"])
    except OSError:
        writer.close()
        return
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


def _write_text(path: str, content: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(content)


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    # Playwright errors carry a call log after the first lines; keep the message short and useful.
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if "Call log:" in lines:
        lines = lines[: lines.index("Call log:")] + lines[lines.index("Call log:") : lines.index("Call log:") + 4]
    return "\n".join(lines)[:4000]


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found: list[int] = []
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, pp in parents.items() if pp == pid and p not in found]
        found.extend(children)
        frontier.extend(children)
    return found


def _kill_tree() -> None:
    for pid in _descendants(os.getpid()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def main() -> None:
    _CONFIG.update(json.loads(os.environ.pop("PORTSIDE_BROWSER_AGENT", "{}")))
    for name, value in (_CONFIG.get("env") or {}).items():
        os.environ[name] = str(value)
    for key in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        if os.environ.get(key):
            os.makedirs(os.environ[key], exist_ok=True)
    try:
        asyncio.run(Agent().serve())
    finally:
        _kill_tree()


if __name__ == "__main__":
    main()
