"""Turn pushed bytes into documents, and documents into a new `RouterState`."""

from __future__ import annotations

import json
import os
from types import ModuleType

from vragent.pipeline import document as state_doc
from vragent.pipeline import validate
from vragent.errors import InvalidInput, ValidationError
from vragent.model import RouterState
from vragent.context import Context
from vragent.fields import Fields
from vragent.subsystems import TYPES, type_module

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms a push)
if TYPE_CHECKING:
    from typing import Any

BATCH_HEADER = "#Apache CloudStack Virtual Router Config File"
_SCRIPTS_WITH_FILE = ("update_config.py",)
_SCRIPTS_IGNORED = ("configure.py",)  # vragent always converges everything

# Each CloudStack type is handled by the module of the same name in its subsystem (parse()
# and merge()), imported only when a push carries that type (vragent.subsystems.TYPES).
SUPPORTED_TYPES = tuple(TYPES)
_NEEDS_CONTEXT = ("ips", "guestnetwork")  # their parse() takes the observed NICs too


def handler(kind: str) -> ModuleType | None:
    if kind not in SUPPORTED_TYPES:
        return None
    import importlib

    return importlib.import_module(type_module(kind))


# Types the management server sends that later subsystems will handle.
KNOWN_UNSUPPORTED = ("bgppeers",)

# What a shared network's VR (cmdline type dhcpsrvr) refuses: it has no public NIC and is
# not on the guests' data path, so public IPs, NAT, firewalling and load balancing have
# nothing to act on. The management server gives a VR type dhcpsrvr exactly when it has
# no public NIC (VirtualNetworkApplianceManagerImpl's boot arguments), so it has no public
# IP to attach such rules to; a push that held some would leave a router claiming rules
# nothing enforces.
NOT_FOR_DHCP_SERVER = ("ips", "firewallrules", "forwardrules", "staticnatrules", "loadbalancer",
                       "ipv6firewallrules", "networkacl", "staticroutes")


_UNPARSED = object()


class Document:
    """One config file of a push: its name, its JSON text and the parsed data.

    The text is parsed when the data is first needed, so a push the agent remembers
    merging already (memo.MergeMemo) is never parsed again: a megabyte of rules costs
    ~10 ms to parse. `parse()` reports malformed JSON as a ValidationError.
    """

    __slots__ = ("name", "text", "_data", "_where")

    def __init__(self, name: str, data: Any = _UNPARSED, text: str | None = None, where: str = ""):
        self.name = name  # the pushed file's name, e.g. firewall_rules.json.3f0c...
        self.text = text  # the JSON as pushed, when it came from a file (fingerprints)
        self._data = data
        self._where = where  # where the text sits in its file, for the error message

    @property
    def path(self) -> str:
        return f"{self.name}:$"

    def parse(self, errors: list[ValidationError]) -> bool:
        if self._data is _UNPARSED:
            try:
                self._data = json.loads(self.text)
            except json.JSONDecodeError as exc:
                errors.append(ValidationError(self.path, f"not valid JSON{self._where}: {exc}"))
                return False
        return True

    @property
    def data(self) -> Any:
        errors: list[ValidationError] = []
        if not self.parse(errors):
            raise InvalidInput(errors)
        return self._data

    @property
    def is_native(self) -> bool:
        return isinstance(self.data, dict) and state_doc.is_native(self.data)


def load_push(name: str, text: str) -> list[Document]:
    """Split a push into documents; malformed framing raises InvalidInput (and malformed
    JSON with it); the JSON of a well-framed push is parsed when it is needed."""
    stripped = text.lstrip()
    if stripped.startswith(BATCH_HEADER) or stripped.startswith("<file>") or stripped.startswith("<version>"):
        return _load_batch(name, text)
    return [Document(name, text=text)]


def parse_all(documents: list[Document]) -> None:
    """Parse every document's JSON; every malformed one is reported at once."""
    errors: list[ValidationError] = []
    for document in documents:
        document.parse(errors)
    if errors:
        raise InvalidInput(errors)


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
        documents.append(Document(f"{name}:{target}", text=content, where=f" (line {file_line})"))
    if errors:
        for document in documents:  # a broken batch: report its malformed JSON along
            document.parse(errors)
        raise InvalidInput(errors)
    # A well-framed batch may hold nothing: the management server writes the header even when
    # no command was queued between its aggregation Start and Finish. It applies as a re-check
    # of the committed state, which changes nothing on a converged router.
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
        # Only a text that names an event type can be one (parsing is skipped otherwise).
        if any(kind in document.text for kind in EVENT_TYPES) or "\\u" in document.text:
            if isinstance(document.data, dict) and document.data.get("type") in EVENT_TYPES:
                return None
        digest.update(document.text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def merge_documents(state: RouterState, documents: list[Document],
                    context: Context | None = None) -> RouterState:
    """Validate and merge every document into `state`; all errors raise together."""
    parse_all(documents)
    context = context or Context()
    errors: list[ValidationError] = []
    # id(item) -> (item, JSON path): identity, because hashing thousands of frozen rules is
    # slow; holding the item keeps its id from being reused by another object.
    origins: dict[int, tuple[object, str]] = {}
    gateway_only: list[tuple[str, Fields]] = []  # (type, document) of NOT_FOR_DHCP_SERVER types
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
        if kind in NOT_FOR_DHCP_SERVER:
            gateway_only.append((kind, fields))
        change = module.parse(fields, context) if kind in _NEEDS_CONTEXT else module.parse(fields)
        if change is None:
            continue
        state = module.merge(state, change)
        if hasattr(module, "origins"):
            pairs = module.origins(change)
            origins.update((id(item), (item, path)) for item, path in (pairs.items() if isinstance(pairs, dict) else pairs))
    if state.is_dhcp_server:  # known only once the whole push is merged (its cmdline may come last)
        for kind, fields in gateway_only:
            fields.error("type", f"{kind!r} is refused on a dhcpsrvr router: a shared network's VR is "
                                 "not the guests' gateway and has no public NIC, so it does no NAT, "
                                 "firewalling or load balancing")
    if not errors:
        errors.extend(validate.check_state(state, origins))
    if errors:
        raise InvalidInput(errors)
    return state
