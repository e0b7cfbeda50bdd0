"""Static analysis of a tool's Python source: our AST rules plus Bandit (``# nosec`` ignored).

Findings are located ``source:<line>``; when Bandit and an AST rule flag the same line in the same
category, the stronger one is kept.
"""

from __future__ import annotations

import ast
import logging
import math
import re
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from portside.server.reviews.models import Category, Finding, Severity, make_finding
from portside.server.reviews.poisoning import SENSITIVE_PATH_RE

log = logging.getLogger(__name__)

C, H, M, L = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW
PRIV, DATA, MAL, RES = (Category.PRIVILEGE_ESCALATION, Category.DATA_EXPOSURE, Category.MALICIOUS_CODE,
                        Category.RESOURCE_ABUSE)

MAX_SOURCE_BYTES = 1_000_000

_SHELL_CALLS = {"os.system", "os.popen", "os.popen2", "os.popen3", "os.popen4", "commands.getoutput",
                "commands.getstatusoutput", "subprocess.getoutput", "subprocess.getstatusoutput",
                "asyncio.create_subprocess_shell", "pty.spawn"}
_EXEC_PREFIXES = ("os.exec", "os.spawn", "os.posix_spawn")
_SUBPROCESS = {"subprocess.run", "subprocess.Popen", "subprocess.call", "subprocess.check_call",
               "subprocess.check_output", "asyncio.create_subprocess_exec"}
_SOCKET = {"socket.socket", "socket.create_connection", "socket.create_server", "socket.socketpair",
           "socket.fromfd", "asyncio.open_connection", "asyncio.start_server"}
_HTTP_PREFIXES = ("requests.", "httpx.", "aiohttp.", "urllib3.")
_HTTP = {"urllib.request.urlopen", "urllib.request.Request", "urllib.request.urlretrieve", "urllib.urlopen",
         "urllib2.urlopen", "http.client.HTTPConnection", "http.client.HTTPSConnection"}
_REMOTE = {"smtplib.SMTP", "smtplib.SMTP_SSL", "ftplib.FTP", "ftplib.FTP_TLS", "telnetlib.Telnet",
           "paramiko.SSHClient", "paramiko.Transport"}
_DYNAMIC = {"eval", "exec", "builtins.eval", "builtins.exec"}
_DESERIAL = {"pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load", "cPickle.loads", "dill.load",
             "dill.loads", "marshal.load", "marshal.loads", "shelve.open", "yaml.unsafe_load", "yaml.full_load",
             "jsonpickle.decode", "joblib.load", "torch.load"}
_DECODERS = ("base64.", "codecs.decode", "zlib.decompress", "bytes.fromhex", "binascii.", "lzma.", "bz2.",
             "gzip.decompress")
_OPEN = {"open", "io.open", "os.open", "builtins.open", "codecs.open"}
_PATH_METHODS = {"open", "read_text", "read_bytes", "write_text", "write_bytes"}
_DESTRUCTIVE = {"shutil.rmtree", "os.remove", "os.unlink", "os.rmdir", "os.removedirs"}
_PRIV = {"os.setuid", "os.setgid", "os.seteuid", "os.chown", "os.chmod", "os.chroot", "ctypes.CDLL",
         "ctypes.cdll.LoadLibrary", "ctypes.WinDLL"}
_FORK = {"os.fork", "os.forkpty"}

_SECRET_NAME = re.compile(
    r"(?i)(?:pass(?:word|wd)?|secret|token|api[_-]?key|apikey|private[_-]?key|credential|access[_-]?key|auth)"
)
_PLACEHOLDER = re.compile(r"(?i)example|changeme|change[_-]me|your[_-]|xxx|<|\{\{|\$\{|dummy|placeholder|redacted")
_TOKEN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("OpenAI-style API key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}\b")),
    ("Slack token", re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("Stripe live key", re.compile(r"\b[rs]k_live_[0-9A-Za-z]{16,}\b")),
    ("private key block", re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----")),
    ("JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
)
_TOKENISH = re.compile(r"^[A-Za-z0-9+/=_\-.]{24,}$")


def shannon_entropy(text: str) -> float:
    """Bits per character."""
    if not text:
        return 0.0
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def redact(secret: str) -> str:
    """``abcd…yz (40 chars)``: enough to find it, not enough to use it."""
    if len(secret) <= 8:
        return "*" * len(secret)
    return f"{secret[:4]}…{secret[-2:]} ({len(secret)} chars)"


def _is_tokenish(value: str) -> bool:
    if not _TOKENISH.match(value) or value.isalpha() or value.isdigit():
        return False
    if re.fullmatch(r"[0-9a-fA-F]+", value):
        return len(value) >= 32 and shannon_entropy(value) >= 3.0
    return shannon_entropy(value) >= 4.0


class _Visitor(ast.NodeVisitor):
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.aliases: dict[str, str] = {}
        self.findings: list[Finding] = []

    # -- helpers
    def _line(self, node: ast.AST) -> int:
        return int(getattr(node, "lineno", 0) or 0)

    def _code(self, lineno: int) -> str:
        if 1 <= lineno <= len(self.lines):
            text = self.lines[lineno - 1].strip()
            return text if len(text) <= 200 else text[:197] + "..."
        return ""

    def add(self, node: ast.AST, rule: str, sev: Severity, cat: Category, title: str, desc: str, conf: float,
            rec: str, evidence: str | None = None) -> None:
        ln = self._line(node)
        self.findings.append(make_finding(rule, sev, cat, title, desc, conf, f"source:{ln}",
                                          evidence if evidence is not None else self._code(ln), rec))

    def qualname(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call):  # e.g. Path("x").read_text -> pathlib.Path()
            inner = self.qualname(node.func)
            return f"{inner}()" if inner else None
        return None

    # -- imports
    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.asname:
                self.aliases[a.asname] = a.name
            else:
                top = a.name.split(".")[0]
                self.aliases.setdefault(top, top)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        mod = node.module or ""
        for a in node.names:
            self.aliases[a.asname or a.name] = f"{mod}.{a.name}" if mod else a.name
        self.generic_visit(node)

    # -- calls
    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualname(node.func) or ""
        shell_kw = any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and not k.value.value)
                       for k in node.keywords)
        if name in _SHELL_CALLS or (name in _SUBPROCESS and shell_kw):
            self.add(node, "code.shell_exec", C, PRIV, "Runs a shell command",
                     f"{name}() hands a command line to a shell: arbitrary command execution.", 0.95,
                     "Tools must not spawn shells; use a sandboxed Portside runtime instead.")
        elif name.startswith(_EXEC_PREFIXES):
            self.add(node, "code.process_exec", C, PRIV, "Replaces or spawns a process",
                     f"{name}() executes another program.", 0.9, "Remove process execution from the tool.")
        elif name in _SUBPROCESS:
            self.add(node, "code.subprocess", H, PRIV, "Starts a subprocess",
                     f"{name}() runs an external program outside the tool's contract.", 0.9,
                     "Avoid subprocesses; if unavoidable, fixed argv with no user input, in a sandbox.")
        elif name in _SOCKET:
            self.add(node, "code.socket", H, DATA, "Opens a raw network socket",
                     f"{name}() opens a raw socket: a channel for exfiltration or remote control.", 0.9,
                     "Remove raw sockets; declare network needs explicitly.")
        elif name in _REMOTE:
            self.add(node, "code.remote_protocol", H, DATA, "Talks to a remote service",
                     f"{name}() connects to a remote mail/file/shell service.", 0.8,
                     "Make sure the destination is fixed and expected.")
        elif name in _HTTP or (name.startswith(_HTTP_PREFIXES) and not name.endswith(("Timeout", "HTTPError"))):
            self.add(node, "code.network", M, DATA, "Makes network requests",
                     f"{name}() sends data over the network.", 0.6,
                     "Check the destination is fixed and declared; it could exfiltrate data.")
        elif name in _DYNAMIC or (name in {"compile", "builtins.compile"} and node.args):
            obfuscated = any(
                isinstance(sub, ast.Call) and (self.qualname(sub.func) or "").startswith(_DECODERS)
                for arg in node.args for sub in ast.walk(arg)
            )
            if obfuscated:
                self.add(node, "code.obfuscated_exec", C, MAL, "Executes a decoded payload",
                         f"{name}() runs code decoded at runtime: an obfuscated payload.", 0.95, "Reject the tool.")
            else:
                conf = 0.9 if name.endswith(("eval", "exec")) else 0.7
                sev = H if name.endswith(("eval", "exec")) else M
                self.add(node, "code.dynamic_exec", sev, MAL, "Evaluates dynamic code",
                         f"{name}() evaluates code built at runtime.", conf, "Replace with explicit logic.")
        elif name in {"__import__", "importlib.import_module"} and node.args and not isinstance(
            node.args[0], ast.Constant
        ):
            self.add(node, "code.dynamic_import", M, MAL, "Imports a module chosen at runtime",
                     "Dynamic imports hide what the code really uses.", 0.6, "Import modules statically.")
        elif name in _DESERIAL or (name == "yaml.load" and not any(
            "Safe" in (self.qualname(k.value) or "") for k in node.keywords
        ) and not (len(node.args) > 1 and "Safe" in (self.qualname(node.args[1]) or ""))):
            self.add(node, "code.unsafe_deserialization", H, MAL, "Unsafe deserialization",
                     f"{name}() can execute code embedded in the data.", 0.8, "Use JSON or a safe loader.")
        elif name in _OPEN or ("Path()" in name and name.split(".")[-1] in _PATH_METHODS):
            self._check_open(node, name)
        elif name in _DESTRUCTIVE:
            self.add(node, "code.destructive_fs", M, RES, "Deletes files",
                     f"{name}() removes files or directories.", 0.6, "Confine deletions to the tool's workspace.")
        elif name in _PRIV:
            self.add(node, "code.privileged_call", H, PRIV, "Privileged or native operation",
                     f"{name}() changes permissions/identity or loads native code.", 0.75, "Remove it.")
        elif name in _FORK:
            self.add(node, "code.fork", M, RES, "Forks processes",
                     f"{name}() can be used for fork bombs or to escape supervision.", 0.6, "Remove it.")
        self._check_environ_dump(node, name)
        self.generic_visit(node)

    def _check_open(self, node: ast.Call, name: str) -> None:
        target: ast.AST | None = node.args[0] if node.args else None
        if "Path()" in name and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call):
            inner = node.func.value
            target = inner.args[0] if inner.args else None
        mode = ""
        if len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
            mode = str(node.args[1].value)
        for k in node.keywords:
            if k.arg == "mode" and isinstance(k.value, ast.Constant):
                mode = str(k.value.value)
        writes = any(c in mode for c in "wax+") or name.endswith(("write_text", "write_bytes"))
        literal = target.value if isinstance(target, ast.Constant) and isinstance(target.value, str) else None
        if literal is not None:
            if SENSITIVE_PATH_RE.search(literal):
                self.add(node, "code.sensitive_file", C, DATA, "Opens a sensitive file",
                         f"Opens {literal!r}, a credential or configuration file.", 0.95, "Reject the tool.")
            elif literal.startswith(("/", "~")) or ".." in literal.split("/"):
                self.add(node, "code.outside_path", H, DATA, "Opens a path outside its workspace",
                         f"Opens {literal!r}, outside the tool's own directory.", 0.75,
                         "Only touch files inside the workspace the caller provides.")
        elif target is not None:
            self.add(node, "code.dynamic_path", M if writes else L, DATA,
                     "Writes a caller-controlled path" if writes else "Reads a caller-controlled path",
                     "The path is computed at runtime; without checks it can escape the workspace.",
                     0.5 if writes else 0.4, "Resolve paths and check they stay inside an allowed root.")

    def _check_environ_dump(self, node: ast.Call, name: str) -> None:
        dumps_env = name in {"os.environ.copy", "os.environ.items", "os.environ.values", "os.environ.keys"} or any(
            self.qualname(a) == "os.environ" for a in node.args
        )
        if dumps_env:
            self.add(node, "code.environment_dump", H, DATA, "Reads the whole environment",
                     "Copies every environment variable, which usually holds secrets.", 0.75,
                     "Read only the specific variables the tool needs.")

    # -- constants and assignments
    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and node.value:
            value = node.value
            for label, pat in _TOKEN_PATTERNS:
                m = pat.search(value)
                if m:
                    self.add(node, "code.hardcoded_secret", H, DATA, f"Hard-coded {label}",
                             f"The source embeds what looks like a real {label}.", 0.85,
                             "Remove it, rotate it, and load secrets from the secret store.",
                             evidence=redact(m.group()))
                    break
            else:
                if SENSITIVE_PATH_RE.search(value) and len(value) < 300:
                    self.add(node, "code.sensitive_path", H, DATA, "References a sensitive file",
                             f"The string {value[:80]!r} names a credential or configuration file.", 0.8,
                             "Tools should not reference user credential files.")
        self.generic_visit(node)

    def _secret_assign(self, target_name: str, value: ast.AST, node: ast.AST) -> None:
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            return
        text = value.value
        if not _SECRET_NAME.search(target_name) or len(text) < 8 or _PLACEHOLDER.search(text):
            return
        if len(set(text)) < 4 or " " in text.strip():
            return
        self.add(node, "code.hardcoded_secret", H, DATA, "Hard-coded credential",
                 f"{target_name} is assigned a literal secret.", 0.75,
                 "Load it from the secret store or environment instead.",
                 evidence=f"{target_name} = {redact(text)!r}")

    def visit_Assign(self, node: ast.Assign) -> None:
        for t in node.targets:
            n = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else None
            if n:
                self._secret_assign(n, node.value, node)
        self._entropy(node.value, node)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if isinstance(node.target, ast.Name) and node.value is not None:
            self._secret_assign(node.target.id, node.value, node)
            self._entropy(node.value, node)
        self.generic_visit(node)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg:
            self._secret_assign(node.arg, node.value, node.value)
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for k, v in zip(node.keys, node.values, strict=True):
            if isinstance(k, ast.Constant) and isinstance(k.value, str):
                self._secret_assign(k.value, v, v)
        self.generic_visit(node)

    def _entropy(self, value: ast.AST, node: ast.AST) -> None:
        if isinstance(value, ast.Constant) and isinstance(value.value, str) and _is_tokenish(value.value):
            if any(p.search(value.value) for _, p in _TOKEN_PATTERNS):
                return
            self.add(node, "code.high_entropy_string", M, DATA, "High-entropy string literal",
                     "A random-looking literal may be an embedded key or token.", 0.5,
                     "Check it is not a credential.", evidence=redact(value.value))

    # -- loops
    def visit_While(self, node: ast.While) -> None:
        forever = isinstance(node.test, ast.Constant) and bool(node.test.value)
        if forever and not any(isinstance(n, (ast.Break, ast.Return, ast.Raise)) for n in ast.walk(node)):
            self.add(node, "code.infinite_loop", L, RES, "Loop without exit",
                     "while True with no break/return/raise never ends.", 0.5, "Bound the loop.")
        self.generic_visit(node)


# --------------------------------------------------------------------------- bandit

_BANDIT_SKIP = {"B101", "B110", "B112", "B311"}
_BANDIT_CATEGORY: dict[str, Category] = {
    "B102": MAL, "B307": MAL, "B301": MAL, "B302": MAL, "B506": MAL, "B614": MAL, "B403": MAL, "B302b": MAL,
    "B113": RES, "B404": PRIV, "B104": DATA, "B105": DATA, "B106": DATA, "B107": DATA, "B108": DATA,
}
_BANDIT_SEV = {"LOW": L, "MEDIUM": M, "HIGH": H}
_BANDIT_CONF = {"LOW": 0.4, "MEDIUM": 0.6, "HIGH": 0.85}


def _bandit_category(test_id: str) -> Category:
    if test_id in _BANDIT_CATEGORY:
        return _BANDIT_CATEGORY[test_id]
    if test_id.startswith("B6"):
        return PRIV
    if test_id.startswith(("B3", "B4", "B5")):
        return DATA
    return MAL


def run_bandit(source: str) -> list[Finding] | None:
    """Bandit's findings for a source string (``# nosec`` ignored); None if Bandit is not installed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # stevedore deprecation noise while loading plugins
            from bandit.core import config as b_config
            from bandit.core import manager as b_manager
    except ImportError:  # pragma: no cover - bandit is a server dependency
        return None
    logging.getLogger("bandit").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="portside-scan-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stevedore deprecation noise while loading plugins
        path = Path(tmp) / "tool_source.py"
        path.write_text(source, encoding="utf-8")
        mgr = b_manager.BanditManager(b_config.BanditConfig(), "file", quiet=True, ignore_nosec=True)
        mgr.discover_files([str(path)])
        mgr.run_tests()
        issues: list[Any] = mgr.get_issue_list()
    lines = source.splitlines()
    out: list[Finding] = []
    for issue in issues:
        tid = str(issue.test_id)
        if tid in _BANDIT_SKIP:
            continue
        ln = int(issue.lineno or 0)
        code = lines[ln - 1].strip()[:200] if 1 <= ln <= len(lines) else ""
        cwe = getattr(getattr(issue, "cwe", None), "id", None)
        out.append(make_finding(
            f"bandit.{tid}", _BANDIT_SEV.get(str(issue.severity), L), _bandit_category(tid),
            f"Bandit {tid}: {issue.test}", str(issue.text) + (f" (CWE-{cwe})" if cwe else ""),
            _BANDIT_CONF.get(str(issue.confidence), 0.5), f"source:{ln}", code,
            "See https://bandit.readthedocs.io for this check.",
        ))
    return out


# --------------------------------------------------------------------------- entry point


_WEAK_RULES = {"code.sensitive_path", "code.high_entropy_string", "code.hardcoded_secret"}


def _merge(findings: Iterable[Finding]) -> list[Finding]:
    """Drop Bandit and string-level findings already covered on the same line and category."""
    ordered = sorted(findings, key=lambda f: (-f.severity.rank, -f.confidence, f.rule.startswith("bandit.")))
    covered: dict[tuple[str, Category], int] = {}
    merged: dict[str, Finding] = {}
    for f in ordered:
        key = (f.location, f.category)
        weak = f.rule.startswith("bandit.") or f.rule in _WEAK_RULES
        if weak and covered.get(key, -1) >= f.severity.rank:
            continue
        covered[key] = max(covered.get(key, -1), f.severity.rank)
        merged.setdefault(f.finding_id, f)
    return sorted(merged.values(), key=lambda f: (f.line or 0, -f.severity.rank))


def scan_source(source: str, *, use_bandit: bool = True) -> tuple[list[Finding], list[str]]:
    """Findings for Python source and the scanners that ran (``ast``, ``bandit``)."""
    if len(source.encode("utf-8", "replace")) > MAX_SOURCE_BYTES:
        from portside.server.errors import PayloadTooLarge

        raise PayloadTooLarge("tool source is larger than 1 MB", code="source_too_large")
    scanners: list[str] = []
    findings: list[Finding] = []
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        ln = getattr(exc, "lineno", 0) or 0
        findings.append(make_finding("code.unparsable", M, MAL, "Source does not parse",
                                     f"The source is not valid Python: {exc}", 0.5, f"source:{ln}", str(exc)[:200],
                                     "Submit valid Python 3 source."))
    else:
        visitor = _Visitor(source.splitlines())
        visitor.visit(tree)
        findings.extend(visitor.findings)
        scanners.append("ast")
    if use_bandit:
        try:
            bandit_findings = run_bandit(source)
        except Exception:  # bandit bugs must not break a review
            log.exception("bandit failed")
            bandit_findings = None
        if bandit_findings is not None:
            findings.extend(bandit_findings)
            scanners.append("bandit")
    return _merge(findings), scanners
