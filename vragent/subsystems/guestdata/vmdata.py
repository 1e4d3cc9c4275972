"""`vmdata` (vm_metadata.json): one VM's user-data and metadata.

`vm_metadata` is a list of `[folder, file, content]` triples (cloudstack-vr-wave2.md §2.1):
folder `userdata` (file `user-data`, content base64) or `metadata` (one key per file).
A push replaces everything the router held for that VM IP, so the manifest lists only
what the last push named (the incumbent's manifest only ever grows).

Content quirks kept from the incumbent: a metadata `""` means "no such key", `null`
means the key exists with an empty value; user-data `null` or `""` means no user-data
(404). Triples of other folders, or without a file name, are skipped as the incumbent
skips them.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, replace

from vragent.errors import ValidationError
from vragent.model import RouterState, VmData
from vragent.fields import Fields, type_name

USERDATA, METADATA = "userdata", "metadata"
# A key becomes a line of the manifest and a path segment: printable, no '/' or spaces.
_KEY = re.compile(r"^[!-.0-~]{1,255}$")


@dataclass(frozen=True)
class VmDataChange:
    data: VmData
    path: str


def decode_userdata(text: str) -> bytes | None:
    """Base64 (padding optional, as the incumbent pads it) to bytes; None when invalid."""
    compact = "".join(text.split())
    if len(compact) % 4 == 1:
        return None
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def valid_key(key: str) -> bool:
    return bool(_KEY.match(key))


def parse(fields: Fields) -> VmDataChange | None:
    ip = fields.ipv4("vm_ip_address")
    entries = fields.list("vm_metadata")
    userdata: bytes | None = None
    metadata: dict[str, tuple[str, str]] = {}  # lower-case key -> (key, value); the last one wins
    ok = ip is not None and entries is not None
    for index, entry in enumerate(entries or ()):
        where = f"{fields.at('vm_metadata')}[{index}]"
        if not isinstance(entry, list) or len(entry) != 3:
            fields.errors.append(ValidationError(where, f"expected a [folder, file, content] list, got {type_name(entry)}"
                                        + (f" of {len(entry)}" if isinstance(entry, list) else "")))
            ok = False
            continue
        folder, name, content = entry
        for position, value in ((0, folder), (1, name)):
            if value is not None and not isinstance(value, str):
                fields.errors.append(ValidationError(f"{where}[{position}]", f"expected a string, got {type_name(value)}"))
                ok = False
        if content is not None and not isinstance(content, str):
            fields.errors.append(ValidationError(f"{where}[2]", f"expected a string or null, got {type_name(content)}"))
            ok = False
            continue
        if folder not in (USERDATA, METADATA) or not isinstance(name, str) or not name:
            continue
        if folder == USERDATA:
            if content:
                userdata = decode_userdata(content)
                if userdata is None:
                    fields.errors.append(ValidationError(f"{where}[2]", "user-data is not valid base64"))
                    ok = False
            else:
                userdata = None
            continue
        if not valid_key(name):
            fields.errors.append(ValidationError(f"{where}[1]", f"{name!r} is not a metadata key (1-255 printable "
                                                       "characters, no '/' or spaces)"))
            ok = False
            continue
        metadata.pop(name.lower(), None)
        if content != "":
            metadata[name.lower()] = (name, content or "")
    if not ok:
        return None
    return VmDataChange(VmData(ip, userdata, tuple(metadata.values())), fields.path)


def merge(state: RouterState, change: VmDataChange) -> RouterState:
    """That VM's data replaces what the router held for its IP; nothing left, nothing kept."""
    kept = [vm for vm in state.vm_data if vm.ip != change.data.ip]
    if not change.data.empty:
        kept.append(change.data)
    return replace(state, vm_data=tuple(sorted(kept, key=lambda vm: vm.ip)))


def origins(change: VmDataChange) -> list[tuple[object, str]]:
    return [(change.data, change.path)]
