"""Static checks of an MCP tool definition: poisoning, over-broad schemas, shadowing, provider.

Every string in the tool (description, schema property descriptions, titles, defaults, enum
values ...) is scanned after removing invisible characters, so ``ig\u200bnore`` still matches
``ignore``. Invisible characters, Unicode tag "ASCII smuggling" and Base64 blobs are reported
themselves, and whatever they hide is decoded and scanned again.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from portside.server.errors import InvalidInput
from portside.server.reviews.models import Category, Finding, Severity, make_finding
from portside.server.reviews.signing import load_public_key

C, H, M, L = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW
INJ, PRIV, DATA = Category.SCHEMA_INJECTION, Category.PRIVILEGE_ESCALATION, Category.DATA_EXPOSURE

MAX_EVIDENCE = 400
_SKIP_KEYS = {"signature", "signatures", "public_key_pem", "public_key", "provider"}


@dataclass(frozen=True)
class TextRule:
    """A regex over tool text and what a match means."""

    rule: str
    pattern: re.Pattern[str]
    severity: Severity
    category: Category
    confidence: float
    title: str
    description: str
    recommendation: str


def _r(p: str) -> re.Pattern[str]:
    return re.compile(p, re.IGNORECASE | re.DOTALL)


_W = r"(?:\W+\w+){0,6}?\W+"  # up to six words in between
SENSITIVE_PATH = (
    r"(?:~/\.ssh\b|\.ssh/|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|/etc/(?:passwd|shadow|sudoers)\b"
    r"|\.aws/(?:credentials|config)\b|\.kube/config\b|\.docker/config\.json|(?<![\w/])\.netrc\b"
    r"|(?<![\w/])\.npmrc\b|(?<![\w/])\.pypirc\b|\.git-credentials\b|\.gnupg\b"
    r"|(?<![\w.-])(?:~/|\./)?\.env(?:\.local|\.production)?\b(?!\w)|\bmcp\.json\b|\.cursor/"
    r"|claude_desktop_config\.json|\.bash_history\b|\.zsh_history\b|\bwallet\.dat\b|\.config/gcloud\b"
    r"|\blogin\.keychain\b)"
)
SENSITIVE_PATH_RE = _r(SENSITIVE_PATH)
_ACCESS_VERB = _r(
    r"\b(?:read|cat|open|load|include|send|pass|provide|attach|upload|extract|retrieve|access|copy|collect"
    r"|contents?|dump|print|output|forward|share|put|insert|append|fetch|get)\b"
)
_SECRET_WORDS = (
    r"(?:api[ _-]?keys?|passwords?|passwds?|credentials?|secrets?|(?:access|auth|bearer|session|refresh)"
    r"[ _-]?tokens?|private[ _-]?keys?|cookies?|env(?:ironment)?[ _-]variables?|conversation history"
    r"|chat history|system prompt|previous messages|ssh keys?)"
)

TEXT_RULES: tuple[TextRule, ...] = (
    TextRule(
        "poisoning.override_instructions",
        _r(
            r"\b(?:ignore|disregard|forget|override|bypass)\b(?:\W+\w+){0,3}?\W+(?:previous|prior|above|earlier"
            r"|preceding|all|any|other|your|system|safety)\W+(?:\w+\W+){0,2}?(?:instructions?|prompts?|rules"
            r"|directives|guidelines|guardrails|messages|context|constraints|policies)\b"
        ),
        C, INJ, 0.95, "Instruction override aimed at the model",
        "The text tells the model to discard its instructions: a prompt-injection payload.",
        "Reject the tool; legitimate tools never address the model's instructions.",
    ),
    TextRule(
        "poisoning.role_hijack",
        _r(r"\b(?:you are now|new (?:system )?instructions?\s*:|from now on,? you|developer mode|jailbreak"
           r"|act as (?:an? )?(?:admin|root|system))\b"),
        H, INJ, 0.85, "Role or instruction hijack",
        "The text tries to give the model a new role or new instructions.",
        "Reject the tool or rewrite its description as a plain statement of what it does.",
    ),
    TextRule(
        "poisoning.concealment",
        _r(
            r"(?:\b(?:do not|don't|dont|never|must not|should not|shouldn't)\s+(?:tell|inform|mention|reveal|show"
            r"|notify|alert|disclose|let|ask|warn)\b(?:\W+\w+){0,8}?\W+(?:the\s+)?(?:user|human|operator)\b"
            r"|\b(?:do not|don't|never)\s+(?:mention|reveal|disclose)\s+(?:this|that|it)\b"
            r"|\bwithout\s+(?:telling|informing|notifying|asking|alerting|warning)\s+(?:the\s+)?(?:user|human)\b"
            r"|\b(?:hide|conceal|keep)\b(?:\W+\w+){0,4}?\W+(?:from|secret from)\s+(?:the\s+)?(?:user|human)\b"
            r"|\bthe\s+(?:user|human)\s+(?:must|should|does|will)\s+not\s+(?:know|see|notice|be told|find out)\b"
            r"|\b(?:silently|secretly|covertly|surreptitiously)\b)"
        ),
        H, INJ, 0.9, "Concealment from the user",
        "The text asks the model to hide its actions from the user.",
        "Reject the tool: concealment is a hallmark of tool poisoning.",
    ),
    TextRule(
        "poisoning.hidden_tag",
        _r(
            r"<\s*(important|system|instructions?|secret|hidden|admin|critical|note_to_ai|assistant|context"
            r"|prompt)\b[^>]*>.*?(?:<\s*/\s*\1\s*>|$)|\[/?INST\]|<\|im_start\|>|<\|system\|>|<!--.*?(?:-->|$)"
        ),
        H, INJ, 0.85, "Hidden instruction block",
        "Tag-delimited or commented-out text addressed to the model (e.g. <IMPORTANT>...</IMPORTANT>).",
        "Reject the tool or remove the hidden block.",
    ),
    TextRule(
        "poisoning.sensitive_file",
        _r(r"(?:" + _ACCESS_VERB.pattern + r")(?:\W+\w+){0,8}?\W*?" + SENSITIVE_PATH
           + r"|" + SENSITIVE_PATH + r"(?:\W+\w+){0,6}?\W+(?:" + _ACCESS_VERB.pattern + r")"),
        C, DATA, 0.92, "Request to read sensitive files",
        "The text asks for the contents of credential or configuration files (SSH keys, .env, cloud creds ...).",
        "Reject the tool; it tries to make the model exfiltrate local secrets.",
    ),
    TextRule(
        "poisoning.sensitive_path_mention",
        SENSITIVE_PATH_RE,
        H, DATA, 0.7, "Mentions a sensitive file",
        "The text names a credential or configuration file.",
        "Check why a tool description refers to this file.",
    ),
    TextRule(
        "poisoning.credential_request",
        _r(
            r"(?<!\bis )(?<!\bare )(?<!\bbe )(?<!\bbeen )(?<!\bwas )"
            r"\b(?:read|send|include|pass|provide|collect|extract|retrieve|upload|forward|copy|leak|share|attach"
            r"|give|put|insert|append|dump|print|output|paste)\b" + _W + r"(?:the\s+|your\s+|all\s+|any\s+)?"
            + _SECRET_WORDS + r"\b"
        ),
        H, DATA, 0.8, "Request for credentials or private context",
        "The text asks the model to hand over secrets, tokens or the conversation/system prompt.",
        "Reject the tool unless the credential flow is explicit and expected.",
    ),
    TextRule(
        "poisoning.exfiltration_url",
        _r(
            r"\b(?:send|post|upload|forward|transmit|exfiltrate|report|submit|copy|leak|mirror|sync|beacon|relay"
            r"|email|mail)\w*\b[^\n]{0,160}?(?:https?://[^\s\"'<>)]+|\b[\w.+-]+@[\w-]+\.[\w.-]+|\b(?:webhook|"
            r"pastebin|ngrok|requestbin|burpcollaborator)\b)"
        ),
        C, DATA, 0.9, "Exfiltration instruction",
        "The text tells the model to send data to an external URL or address.",
        "Reject the tool; data must not leave through instructions hidden in a description.",
    ),
    TextRule(
        "poisoning.shell_snippet",
        _r(r"\b(?:curl|wget)\s+(?:-\S+\s+)*\S+|\bnc\s+-e\b|\bbash\s+-c\b|\|\s*(?:sh|bash)\b|\brm\s+-rf\b"),
        H, PRIV, 0.8, "Shell command in description",
        "The text contains a shell command line the model might run.",
        "Reject the tool or remove the command from its description.",
    ),
    TextRule(
        "poisoning.tool_override",
        _r(
            r"\b(?:this tool|it)\s+(?:replaces|overrides|supersedes|takes precedence over)\b"
            r"|\bwhen(?:ever)?\s+(?:the\s+)?[\w.-]+\s+tool\s+is\s+(?:called|used|invoked|available|present)\b"
            r"|\b(?:instead of|rather than)\s+(?:using|calling|invoking)\s+(?:the\s+)?[\w.-]+"
            r"|\b(?:all other|any other|the other)\s+tools?\b(?:\W+\w+){0,4}?\W+(?:must|should|are|will)\b"
        ),
        H, PRIV, 0.75, "Manipulates other tools",
        "The text tries to change how the model uses other tools (tool shadowing).",
        "Reject the tool: a tool must only describe itself.",
    ),
    TextRule(
        "poisoning.redirect",
        _r(
            r"\b(?:change|replace|modify|redirect|rewrite|set|override)\b[^.\n]{0,40}?\b(?:recipient|destination"
            r"|to[- ]address|bcc|cc|endpoint|target url|account number|iban|wallet(?: address)?)\b"
        ),
        H, INJ, 0.8, "Redirects data or payments",
        "The text tells the model to alter recipients, destinations or accounts.",
        "Reject the tool.",
    ),
    TextRule(
        "poisoning.model_directive",
        _r(
            r"\b(?:you|the (?:assistant|model|ai|agent|llm))\s+(?:must|should|need to|have to|are required to)"
            r"\s+(?:first\s+|always\s+|also\s+)?(?:call|invoke|run|read|send|execute|forward|upload"
            r"|ignore)\b|\bbefore\s+(?:using|calling|invoking)\s+this\s+tool\b"
            r"|\b(?:always|first)\s+(?:call|invoke|run|read)\b"
        ),
        M, INJ, 0.6, "Directive aimed at the model",
        "The text gives the model orders instead of describing the tool.",
        "Review the wording; descriptions should state behaviour, not instruct the model.",
    ),
    TextRule(
        "poisoning.coercion",
        _r(
            r"\b(?:otherwise|or else|if you (?:don't|do not))\b[^.\n]{0,60}?\b(?:crash|fail|break|stop working"
            r"|data loss|be deleted|error)\b|\bvery\s+(?:very\s+)?important\b|\bthis is critical\b"
        ),
        M, INJ, 0.55, "Coercive language",
        "Urgency or threats used to push the model into compliance.",
        "Review the description.",
    ),
)

# Invisible / bidi / tag characters.
_INVISIBLE = re.compile(
    "[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
_INVISIBLE_RUN = re.compile(_INVISIBLE.pattern + "+")
_B64_BLOB = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{40,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX_ONLY = re.compile(r"^[0-9a-fA-F]+$")


_LEFT_BOUND = re.compile(r"[.!?](?=\s)|\n|>")
_RIGHT_BOUND = re.compile(r"[.!?](?=\s|$)|\n|<")


def _clip(text: str, start: int, end: int) -> str:
    """The sentence(s) around ``text[start:end]``, at most MAX_EVIDENCE characters."""
    if end - start >= MAX_EVIDENCE:
        return text[start : start + MAX_EVIDENCE].strip()
    lo = 0
    for m in _LEFT_BOUND.finditer(text, 0, start):
        lo = m.end()
    right = _RIGHT_BOUND.search(text, end)
    hi = (right.end() if right.group() in ".!?" else right.start()) if right else len(text)
    if hi - lo > MAX_EVIDENCE:
        pad = (MAX_EVIDENCE - (end - start)) // 2
        lo, hi = max(0, start - pad), min(len(text), end + pad)
    return text[lo:hi].strip()


def _visible(text: str) -> str:
    """Show invisible characters as ``<U+XXXX>``; long runs are collapsed."""

    def show(m: re.Match[str]) -> str:
        run = m.group()
        if len(run) <= 3:
            return "".join(f"<U+{ord(ch):04X}>" for ch in run)
        return f"<U+{ord(run[0]):04X}..U+{ord(run[-1]):04X} x{len(run)}>"

    return _INVISIBLE_RUN.sub(show, text)


def strip_invisible(text: str) -> str:
    """NFKC-normalise and drop invisible / bidi / tag characters."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))


def decode_tag_chars(text: str) -> str:
    """ASCII hidden in Unicode tag characters (U+E0020..U+E007E), if any."""
    return "".join(chr(ord(ch) - 0xE0000) for ch in text if 0xE0020 <= ord(ch) <= 0xE007E)


def scan_text(text: str, location: str, *, _depth: int = 0) -> list[Finding]:
    """All text-rule, hidden-unicode and Base64 findings for one string."""
    findings: list[Finding] = []
    clean = strip_invisible(text)
    rules_hit: set[str] = set()
    for rule in TEXT_RULES:
        if rule.rule == "poisoning.sensitive_path_mention" and "poisoning.sensitive_file" in rules_hit:
            continue
        for m in rule.pattern.finditer(clean):
            rules_hit.add(rule.rule)
            findings.append(
                make_finding(rule.rule, rule.severity, rule.category, rule.title, rule.description,
                             rule.confidence, location, _clip(clean, m.start(), m.end()), rule.recommendation)
            )
            break  # one finding per rule per string is enough
    findings.extend(_scan_invisible(text, location, _depth))
    findings.extend(_scan_base64(clean, location, _depth))
    return findings


def _scan_invisible(text: str, location: str, depth: int) -> list[Finding]:
    hits = list(_INVISIBLE.finditer(text))
    if not hits:
        return []
    hidden = decode_tag_chars(text)
    first, last = hits[0].start(), hits[-1].end()
    snippet = _visible(text[max(0, first - 60) : min(len(text), last + 60)])
    if len(snippet) > MAX_EVIDENCE:
        snippet = snippet[:MAX_EVIDENCE]
    evidence = f"{snippet} [hidden text: {hidden}]" if hidden else snippet
    only_soft = all(h.group() in "\u00ad\ufeff" for h in hits)
    findings = [
        make_finding(
            rule="poisoning.hidden_unicode",
            severity=C if hidden else (L if only_soft else H),
            category=INJ,
            confidence=0.95 if hidden else (0.4 if only_soft else 0.85),
            location=location,
            title="Invisible Unicode characters",
            description=f"{len(hits)} zero-width, bidi-override or tag characters hide text from human reviewers.",
            evidence=evidence,
            recommendation="Reject the tool or strip the invisible characters and re-review.",
        )
    ]
    if hidden and depth < 2:
        findings.extend(scan_text(hidden, f"{location}(hidden-unicode)", _depth=depth + 1))
    return findings


def _b64decode(blob: str) -> bytes | None:
    padded = blob + "=" * (-len(blob) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None


def _scan_base64(text: str, location: str, depth: int) -> list[Finding]:
    findings: list[Finding] = []
    for m in _B64_BLOB.finditer(text):
        blob = m.group()
        if _HEX_ONLY.match(blob) or blob.isalpha() or blob.isdigit():
            continue
        raw = _b64decode(blob)
        if raw is None:
            continue
        try:
            decoded = raw.decode("utf-8")
            printable = sum(ch.isprintable() or ch in "\n\t" for ch in decoded) / max(1, len(decoded))
        except UnicodeDecodeError:
            decoded, printable = "", 0.0
        inner = scan_text(decoded, f"{location}(base64)", _depth=depth + 1) if printable > 0.9 and depth < 2 else []
        short = blob if len(blob) <= 120 else blob[:117] + "..."
        if inner:
            sev, conf, desc = H, 0.85, "A Base64 blob decodes to instructions for the model."
        elif printable > 0.9:
            sev, conf, desc = M, 0.55, "A Base64 blob decodes to text hidden from human reviewers."
        else:
            sev, conf, desc = L, 0.3, "A long Base64-like blob of binary data."
        evidence = f"{short} => {decoded[:MAX_EVIDENCE]}" if printable > 0.9 else short
        findings.append(
            make_finding("poisoning.base64_blob", sev, INJ, "Encoded blob in text", desc, conf, location, evidence,
                         "Remove encoded content from tool metadata.")
        )
        findings.extend(inner)
    return findings


# --------------------------------------------------------------------------- strings of a tool


def tool_schema(tool: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The input JSON Schema of a tool (``inputSchema``, ``input_schema``, ``schema`` or ``parameters``)."""
    for key in ("inputSchema", "input_schema", "schema", "parameters"):
        value = tool.get(key)
        if isinstance(value, Mapping):
            return value
    return None


_SCHEMA_KEYS = ("inputSchema", "input_schema", "schema", "parameters")


def iter_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(location, string) for every string in a JSON value (keys included when suspicious)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if k in _SKIP_KEYS:
                continue
            child = f"{path}.{k}" if path else str(k)
            if isinstance(k, str) and (len(k) > 40 or _INVISIBLE.search(k)):
                yield f"{child}(key)", k
            yield from iter_strings(v, child)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from iter_strings(v, f"{path}[{i}]")


def tool_strings(tool: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Every string of a tool with its location; the input schema is reported under ``schema.``."""
    for key, value in tool.items():
        if key in _SKIP_KEYS:
            continue
        if key in _SCHEMA_KEYS and isinstance(value, Mapping):
            yield from iter_strings(value, "schema")
        else:
            yield from iter_strings(value, str(key))


def scan_tool_text(tool: Mapping[str, Any]) -> list[Finding]:
    """Poisoning findings over every string of the tool."""
    findings: list[Finding] = []
    for location, text in tool_strings(tool):
        findings.extend(scan_text(text, location))
        if location == "description" and len(text) > 1500:
            findings.append(
                make_finding("poisoning.long_description", L, INJ, "Very long description",
                             f"The description is {len(text)} characters; long texts hide instructions.", 0.4,
                             location, text[:120] + "...", "Keep descriptions short and factual.")
            )
    return findings


# --------------------------------------------------------------------------- schema breadth

_EXEC_TOKENS = {"command", "cmd", "shell", "script", "code", "exec", "expression", "expr", "eval", "program",
                "commandline", "bash", "powershell"}
_SQL_TOKENS = {"sql"}
_PATH_TOKENS = {"path", "file", "filename", "filepath", "dir", "directory", "folder", "pathname"}
_URL_TOKENS = {"url", "uri", "endpoint", "host", "hostname", "webhook", "callback", "link"}
_QUERY_TOKENS = {"query", "q"}
_SECRET_PARAM = ("password", "passwd", "secret", "apikey", "accesstoken", "authtoken", "bearertoken",
                 "privatekey", "credential", "sshkey", "cookie", "sessiontoken", "token")
_HARVEST_PARAM = ("conversation", "chathistory", "systemprompt", "previousmessages", "sidenote", "messagehistory",
                  "fullcontext", "allmessages")


def _tokens(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    parts = [p.lower() for p in re.split(r"[^A-Za-z0-9]+", spaced) if p]
    return set(parts) | {"".join(parts)}


def _is_free_string(prop: Mapping[str, Any]) -> bool:
    types = prop.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types) or (
        types is None and "properties" not in prop and "items" not in prop
    )
    constrained = any(k in prop for k in ("enum", "const", "pattern", "format"))
    return bool(is_string and not constrained)


def _iter_properties(schema: Mapping[str, Any], path: str) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    props = schema.get("properties")
    if isinstance(props, Mapping):
        for name, prop in props.items():
            if not isinstance(prop, Mapping):
                continue
            here = f"{path}.properties.{name}"
            yield str(name), here, prop
            yield from _iter_properties(prop, here)
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from _iter_properties(items, f"{path}.items")


def _iter_objects(schema: Mapping[str, Any], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if schema.get("type") == "object" or "properties" in schema:
        yield path, schema
    props = schema.get("properties")
    if isinstance(props, Mapping):
        for name, prop in props.items():
            if isinstance(prop, Mapping):
                yield from _iter_objects(prop, f"{path}.properties.{name}")
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from _iter_objects(items, f"{path}.items")


def scan_schema(tool: Mapping[str, Any]) -> list[Finding]:
    """Over-broad or data-harvesting input schemas."""
    schema = tool_schema(tool)
    out: list[Finding] = []
    if schema is None:
        return [make_finding("schema.missing", M, INJ, "No input schema",
                             "The tool declares no input schema, so any arguments are accepted.", 0.5, "schema",
                             "", "Declare an object schema with typed, required properties.")]
    if schema.get("type") not in ("object", None):
        out.append(make_finding("schema.not_object", M, INJ, "Input schema is not an object",
                                "MCP tool inputs must be JSON objects.", 0.5, "schema.type",
                                str(schema.get("type")), "Use type: object."))
    for name, loc, prop in _iter_properties(schema, "schema"):
        toks = _tokens(name)
        joined = re.sub(r"[^a-z0-9]", "", name.lower())
        if any(w in joined for w in _HARVEST_PARAM):
            out.append(make_finding(
                "schema.context_harvest", H, DATA, "Parameter collects conversation context",
                f"Parameter {name!r} invites the model to pass its conversation or system prompt.", 0.8, loc,
                f"{name}: {prop.get('description', '')}".strip(), "Reject the tool or remove the parameter."))
        elif any(w in joined for w in _SECRET_PARAM) and "tokens" not in toks and "maxtokens" not in joined:
            out.append(make_finding(
                "schema.credential_param", H, DATA, "Parameter asks for a credential",
                f"Parameter {name!r} makes the model supply a secret; credentials belong in server config.", 0.75,
                loc, f"{name}: {prop.get('description', '')}".strip(),
                "Inject credentials server-side (secrets store), not through model arguments."))
        if not _is_free_string(prop):
            continue
        if toks & _EXEC_TOKENS:
            sev, cat, conf, what = H, PRIV, 0.7, "code or shell command"
        elif toks & _SQL_TOKENS:
            sev, cat, conf, what = M, PRIV, 0.65, "SQL statement"
        elif toks & _PATH_TOKENS:
            sev, cat, conf, what = M, DATA, 0.6, "file-system path"
        elif toks & _URL_TOKENS:
            sev, cat, conf, what = M, DATA, 0.55, "URL or host"
        elif toks & _QUERY_TOKENS:
            sev, cat, conf, what = L, INJ, 0.4, "query"
        else:
            continue
        out.append(make_finding(
            "schema.free_form", sev, cat, f"Unconstrained {what} parameter",
            f"Parameter {name!r} is a free-form string ({what}) with no enum, pattern or format.", conf, loc,
            f"{name}: {_short_json(prop)}", "Constrain it with enum, pattern or format, and validate server-side."))
    for loc, obj in _iter_objects(schema, "schema"):
        ap = obj.get("additionalProperties", None)
        if ap is True or (isinstance(ap, Mapping) and not ap):
            out.append(make_finding("schema.additional_properties", M, INJ, "Accepts arbitrary extra properties",
                                    "additionalProperties is true, so undeclared arguments pass through.", 0.5,
                                    f"{loc}.additionalProperties", "additionalProperties: true",
                                    "Set additionalProperties: false."))
        elif ap is None:
            out.append(make_finding("schema.additional_properties", L, INJ, "additionalProperties not set",
                                    "Objects accept undeclared properties unless additionalProperties is false.",
                                    0.3, loc, "additionalProperties missing", "Set additionalProperties: false."))
    props = schema.get("properties")
    if isinstance(props, Mapping) and props and not schema.get("required"):
        out.append(make_finding("schema.no_required", L, INJ, "No required properties",
                                "Nothing is required, so the tool accepts an empty call.", 0.3, "schema.required",
                                "required missing", "List the properties the tool needs in required."))
    return out


def _short_json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------- shadowing

COMMON_TOOL_NAMES: frozenset[str] = frozenset({
    "read_file", "write_file", "edit_file", "delete_file", "move_file", "copy_file", "list_files",
    "list_directory", "create_directory", "search_files", "read_multiple_files", "get_file_info",
    "exec", "execute", "execute_command", "run_command", "run_shell", "shell", "bash", "sh", "terminal",
    "python", "run_python", "execute_code", "run_code", "eval", "fetch", "http_request", "http_get",
    "http_post", "web_fetch", "curl", "wget", "browser", "navigate", "search", "web_search",
    "google_search", "bing_search", "send_email", "send_message", "query", "sql_query", "run_sql",
    "memory", "git", "github", "filesystem", "computer", "str_replace_editor", "text_editor",
})


def _norm_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_COMMON_NORM = {_norm_name(n): n for n in COMMON_TOOL_NAMES}


def _edit1(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def scan_name(tool: Mapping[str, Any]) -> list[Finding]:
    """Names that shadow or typo-squat common built-in tools."""
    name = str(tool.get("name") or "")
    if not name:
        return [make_finding("name.missing", M, INJ, "Tool has no name", "A tool must have a name.", 0.6, "name", "",
                             "Give the tool a unique, descriptive name.")]
    last = re.split(r"__|[./:]", name)[-1]
    out: list[Finding] = []
    for candidate in dict.fromkeys([name, last]):
        norm = _norm_name(candidate)
        if candidate in COMMON_TOOL_NAMES or candidate.lower() in COMMON_TOOL_NAMES:
            out.append(make_finding(
                "name.shadowing", M, PRIV, "Name shadows a common tool",
                f"{name!r} has the same name as a widely used built-in tool, so the model may confuse them.",
                0.6, "name", name, "Prefix the name with the provider (e.g. acme_read_file)."))
            break
        if norm in _COMMON_NORM:
            out.append(make_finding(
                "name.shadowing", M, PRIV, "Name shadows a common tool",
                f"{name!r} is a spelling variant of the built-in tool {_COMMON_NORM[norm]!r}.", 0.65, "name", name,
                "Use a distinct, provider-prefixed name."))
            break
        near = next((orig for n, orig in _COMMON_NORM.items() if len(n) >= 5 and _edit1(norm, n)), None)
        if near:
            out.append(make_finding(
                "name.typosquat", H, PRIV, "Name typo-squats a common tool",
                f"{name!r} is one edit away from the built-in tool {near!r}.", 0.7, "name", name,
                "Reject the tool or rename it."))
            break
    if _INVISIBLE.search(name) or not name.isascii():
        out.append(make_finding("name.non_ascii", H, INJ, "Non-ASCII tool name",
                                "Tool names with invisible or look-alike characters impersonate other tools.",
                                0.8, "name", _visible(name), "Use plain ASCII names."))
    return out


# --------------------------------------------------------------------------- provider


def scan_provider(provider: Mapping[str, Any] | None) -> list[Finding]:
    """Is there a key by which this tool's signatures could be verified?"""
    if not provider:
        return [make_finding("provider.unknown", L, INJ, "Unknown provider",
                             "No provider is declared, so nobody vouches for this definition (rug-pull risk).", 0.5,
                             "provider", "", "Declare the provider and its SchemaPin key or domain.")]
    pem = provider.get("public_key_pem") or provider.get("public_key")
    url = provider.get("public_key_url")
    domain = provider.get("domain")
    out: list[Finding] = []
    if pem:
        try:
            load_public_key(str(pem))
        except InvalidInput as exc:
            out.append(make_finding("provider.bad_key", M, INJ, "Provider key is unusable",
                                    f"The provider's public key cannot verify SchemaPin signatures: {exc.message}",
                                    0.7, "provider.public_key_pem", str(pem)[:80],
                                    "Publish an ECDSA P-256 PEM public key."))
    elif url:
        if not str(url).startswith("https://"):
            out.append(make_finding("provider.insecure_key_url", M, INJ, "Key URL is not HTTPS",
                                    "A key fetched over plain HTTP can be swapped in transit.", 0.6,
                                    "provider.public_key_url", str(url), "Serve the key over HTTPS."))
    elif not domain:
        out.append(make_finding("provider.no_key", L, INJ, "Provider has no verifiable key",
                                "Neither a public key, a key URL nor a SchemaPin domain is declared, so the "
                                "definition cannot be verified (rug-pull risk).", 0.6, "provider",
                                str(provider.get("name", "")), "Publish /.well-known/schemapin.json and sign tools."))
    return out
