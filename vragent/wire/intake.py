"""Turn pushed bytes into documents, and documents into a new `RouterState`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from types import ModuleType

from vragent import state as state_doc
from vragent import validate
from vragent.errors import InvalidInput, ValidationError
from vragent.model import RouterState
from vragent.wire.context import Context
from vragent.wire.fields import Fields

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms a push)
if TYPE_CHECKING:
    from typing import Any

BATCH_HEADER = "#Apache CloudStack Virtual Router Config File"
_SCRIPTS_WITH_FILE = ("update_config.py",)
_SCRIPTS_IGNORED = ("configure.py",)  # vragent always converges everything

# Each CloudStack type is handled by the vragent.wire module of the same name (parse() and
# merge()), imported only when a push carries that type: most pushes carry one or two, and
# importing every handler costs every push.
SUPPORTED_TYPES = ("cmdline", "ips", "guestnetwork", "firewallrules", "forwardrules", "staticnatrules",
                   "dhcpentry", "dhcpconfig", "loadbalancer", "vmdata", "vmpassword", "monitorservice",
                   "ipv6firewallrules")
_NEEDS_CONTEXT = ("ips", "guestnetwork")  # their parse() takes the observed NICs too


def handler(kind: str) -> ModuleType | None:
    if kind not in SUPPORTED_TYPES:
        return None
    import importlib

    return importlib.import_module(f"vragent.wire.{kind}")


# Types the management server sends that later subsystems will handle.
KNOWN_UNSUPPORTED = ("networkacl", "vpnuserlist", "remoteaccessvpn", "site2sitevpn", "staticroutes",
                     "ipaliases", "bgppeers")


@dataclass(frozen=True)
class Document:
    name: str  # the pushed file's name, e.g. firewall_rules.json.3f0c...
    data: Any
    text: str | None = None  # the JSON as pushed, when it came from a file (fingerprints)

    @property
    def path(self) -> str:
        return f"{self.name}:$"

    @property
    def is_native(self) -> bool:
        return isinstance(self.data, dict) and state_doc.is_native(self.data)


def load_push(name: str, text: str) -> list[Document]:
    """Split a push into documents; malformed framing or JSON raises InvalidInput."""
    stripped = text.lstrip()
    if stripped.startswith(BATCH_HEADER) or stripped.startswith("<file>") or stripped.startswith("<version>"):
        return _load_batch(name, text)
    return [Document(name, _load_json(text, name), text)]


def _load_json(text: str, name: str, where: str = "") -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput([ValidationError(f"{name}:$", f"not valid JSON{where}: {exc}")]) from None


def _load_batch(name: str, text: str) -> list[Document]:
    """Parse a VR-<uuid>.cfg aggregate: <file> blocks, then <script> lines naming them."""
    errors: list[ValidationError] = []
    files: dict[str, tuple[str, int]] = {}
    scripts: list[tuple[str, int]] = []
    lines = text.splitlines()
    index = 0

    def block(tag: str, start: int) -> tuple[list[str], int]:
        end = start
        while end < len(lines) and lines[end].strip() != f"</{tag}>":
            end += 1
        if end == len(lines):
            errors.append(ValidationError(f"{name}:line {start}", f"<{tag}> is never closed"))
        return lines[start:end], end + 1

    while index < len(lines):
        line = lines[index].strip()
        lineno = index + 1
        if line in ("<version>", "<file>", "<script>"):
            body, index = block(line[1:-1], index + 1)
            if line == "<file>":
                if not body:
                    errors.append(ValidationError(f"{name}:line {lineno}", "<file> block without a path"))
                    continue
                files[os.path.basename(body[0].strip())] = ("\n".join(body[1:]), lineno)
            elif line == "<script>":
                scripts.extend((command.strip(), lineno) for command in body if command.strip())
            continue
        if line and not line.startswith("#"):
            errors.append(ValidationError(f"{name}:line {lineno}", f"unexpected line {line[:60]!r}"))
        index += 1

    documents: list[Document] = []
    for command, lineno in scripts:
        words = command.split()
        script = os.path.basename(words[0])
        if script in _SCRIPTS_IGNORED:
            continue
        if script not in _SCRIPTS_WITH_FILE or len(words) < 2:
            errors.append(ValidationError(f"{name}:line {lineno}", f"script {command!r} is not supported"))
            continue
        target = os.path.basename(words[1])
        if target not in files:
            errors.append(ValidationError(f"{name}:line {lineno}", f"{target} has no <file> block in this batch"))
            continue
        content, file_line = files[target]
        try:
            documents.append(Document(f"{name}:{target}", json.loads(content), content))
        except json.JSONDecodeError as exc:
            errors.append(ValidationError(f"{name}:{target}:$", f"not valid JSON (line {file_line}): {exc}"))
    if errors:
        raise InvalidInput(errors)
    if not documents:
        raise InvalidInput([ValidationError(f"{name}:$", "the batch holds no config file to apply")])
    return documents


# Types whose push is an event rather than desired state: applying the same push again
# must act again (a password pushed twice is handed to the password server twice).
EVENT_TYPES = ("vmpassword",)


def fingerprint(documents: list[Document]) -> str | None:
    """A digest of what was pushed (not of the file names, which carry a fresh uuid each time);
    None when the push cannot be recognised again (memo.MergeMemo then always merges)."""
    import hashlib

    digest = hashlib.sha256()
    for document in documents:
        if document.text is None:
            return None
        if isinstance(document.data, dict) and document.data.get("type") in EVENT_TYPES:
            return None
        digest.update(document.text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def merge_documents(state: RouterState, documents: list[Document],
                    context: Context | None = None) -> RouterState:
    """Validate and merge every document into `state`; all errors raise together."""
    context = context or Context()
    errors: list[ValidationError] = []
    # id(item) -> (item, JSON path): identity, because hashing thousands of frozen rules is
    # slow; holding the item keeps its id from being reused by another object.
    origins: dict[int, tuple[object, str]] = {}
    for document in documents:
        if document.is_native:
            state = state_doc.from_document(document.data, document.path, errors)
            continue
        fields = Fields(document.data, document.path, errors)
        kind = fields.string("type")
        if kind is None:
            continue
        module = handler(kind)
        if module is None:
            known = "a known CloudStack type that is " if kind in KNOWN_UNSUPPORTED else ""
            fields.error("type", f"{kind!r} is {known}not supported yet")
            continue
        change = module.parse(fields, context) if kind in _NEEDS_CONTEXT else module.parse(fields)
        if change is None:
            continue
        state = module.merge(state, change)
        if hasattr(module, "origins"):
            pairs = module.origins(change)
            origins.update((id(item), (item, path)) for item, path in (pairs.items() if isinstance(pairs, dict) else pairs))
    if not errors:
        errors.extend(validate.check_state(state, origins))
    if errors:
        raise InvalidInput(errors)
    return state
