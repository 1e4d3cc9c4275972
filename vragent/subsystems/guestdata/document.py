"""The `vm_data` and `monitoring` sections of the state document (schema: schema/state.schema.json).

`vm_data`: each VM's user-data (base64) and metadata (an object, keys in the order
pushed), served by the data server (subsystems/guestdata/render.py). `monitoring`: the health
monitoring settings of a `monitorservice` push (subsystems/monitoring/render.py). Both are left out
of the document while empty, so routers without them keep the document they always had.
Passwords are never here: they live in the password server's own file until acknowledged.
"""

from __future__ import annotations

import base64

from vragent.errors import ValidationError
from vragent.model import VmData
from vragent.fields import Fields, type_name
from vragent.subsystems.guestdata.vmdata import decode_userdata, valid_key

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms a push)
if TYPE_CHECKING:
    from typing import Any

VM_DATA = "vm_data"


# -- writing ---------------------------------------------------------------------------

def to_document(vm_data: tuple[VmData, ...]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if vm_data:
        doc[VM_DATA] = [{"ip": str(vm.ip),
                         "userdata": base64.b64encode(vm.userdata).decode() if vm.userdata is not None else None,
                         "metadata": dict(vm.metadata)} for vm in vm_data]
    return doc


# -- reading what vragent wrote --------------------------------------------------------

def load_trusted(data: dict) -> tuple[VmData, ...]:
    from vragent.fields import document_address as _address

    vms = tuple(VmData(_address(v["ip"]),
                       base64.b64decode(v["userdata"]) if v.get("userdata") is not None else None,
                       tuple(v.get("metadata", {}).items()))
                for v in data.get(VM_DATA, ()))
    return vms


# -- reading a native document ---------------------------------------------------------

def from_document(doc: Fields, errors: list[ValidationError]) -> tuple[VmData, ...]:
    vms: dict = {}
    for index, raw in enumerate(doc.list(VM_DATA, []) or []):
        item = Fields(raw, f"{doc.at(VM_DATA)}[{index}]", errors)
        vm = _vm(item, errors)
        if vm is None:
            continue
        if vm.ip in vms:
            item.error("ip", f"{vm.ip} is listed twice")
        elif not vm.empty:
            vms[vm.ip] = vm
    return tuple(sorted(vms.values(), key=lambda vm: vm.ip))


def _vm(item: Fields, errors: list[ValidationError]) -> VmData | None:
    ip = item.ipv4("ip")
    userdata = None
    text = item.string("userdata", None)
    if text is not None:
        userdata = decode_userdata(text)
        if userdata is None:
            item.error("userdata", "is not valid base64")
            return None
    metadata = item.raw("metadata", {})
    if not isinstance(metadata, dict):
        item.error("metadata", f"expected an object of key: value, got {type_name(metadata)}")
        return None
    seen: set[str] = set()
    pairs = []
    for key, value in metadata.items():
        where = f"{item.at('metadata')}.{key}"
        if not valid_key(key):
            errors.append(ValidationError(where, "is not a metadata key (1-255 printable characters, no '/' or spaces)"))
        elif key.lower() in seen:
            errors.append(ValidationError(where, "repeats a key (keys are matched case-insensitively)"))
        elif not isinstance(value, str):
            errors.append(ValidationError(where, f"expected a string, got {type_name(value)}"))
        else:
            seen.add(key.lower())
            pairs.append((key, value))
    if ip is None or len(pairs) != len(metadata):
        return None
    return VmData(ip, userdata, tuple(pairs))
