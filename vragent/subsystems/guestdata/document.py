"""The `vm_data` and `monitoring` sections of the state document (schema: schema/state.schema.json).

`vm_data`: each VM's user-data (base64) and metadata (an object, keys in the order
pushed), served by the data server (render/metadata.py). `monitoring`: the health
monitoring settings of a `monitorservice` push (render/monitoring.py). Both are left out
of the document while empty, so routers without them keep the document they always had.
Passwords are never here: they live in the password server's own file until acknowledged.
"""

from __future__ import annotations

import base64
import json

from vragent.errors import ValidationError
from vragent.model import MonitoredService, Monitoring, VmData
from vragent.fields import Fields, type_name
from vragent.subsystems.monitoring.monitorservice import parse_config
from vragent.subsystems.guestdata.vmdata import decode_userdata, valid_key

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms a push)
if TYPE_CHECKING:
    from typing import Any

VM_DATA, MONITORING = "vm_data", "monitoring"


# -- writing ---------------------------------------------------------------------------

def to_document(vm_data: tuple[VmData, ...], monitoring: Monitoring | None) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if vm_data:
        doc[VM_DATA] = [{"ip": str(vm.ip),
                         "userdata": base64.b64encode(vm.userdata).decode() if vm.userdata is not None else None,
                         "metadata": dict(vm.metadata)} for vm in vm_data]
    if monitoring is not None:
        doc[MONITORING] = {
            "services": [{"name": s.name, "options": dict(s.options)} for s in monitoring.services],
            "disabled": monitoring.disabled,
            "health_checks_enabled": monitoring.health_checks_enabled,
            "basic_interval": monitoring.basic_interval,
            "advanced_interval": monitoring.advanced_interval,
            "excluded_checks": list(monitoring.excluded_checks),
            "health_checks_config": json.loads(monitoring.health_checks_config),
        }
    return doc


def _canonical(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


# -- reading what vragent wrote --------------------------------------------------------

def load_trusted(data: dict) -> tuple[tuple[VmData, ...], Monitoring | None]:
    from vragent.fields import document_address as _address

    vms = tuple(VmData(_address(v["ip"]),
                       base64.b64decode(v["userdata"]) if v.get("userdata") is not None else None,
                       tuple(v.get("metadata", {}).items()))
                for v in data.get(VM_DATA, ()))
    m = data.get(MONITORING)
    monitoring = None if m is None else Monitoring(
        tuple(MonitoredService(s["name"], tuple(s.get("options", {}).items())) for s in m.get("services", ())),
        m.get("disabled", False), m.get("health_checks_enabled", False), m.get("basic_interval"),
        m.get("advanced_interval"), tuple(m.get("excluded_checks", ())),
        _canonical(m.get("health_checks_config", {})))
    return vms, monitoring


# -- reading a native document ---------------------------------------------------------

def from_document(doc: Fields, errors: list[ValidationError]) -> tuple[tuple[VmData, ...], Monitoring | None]:
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
    raw = doc.raw(MONITORING, None)
    monitoring = None if raw is None else _monitoring(Fields(raw, doc.at(MONITORING), errors), errors)
    return tuple(sorted(vms.values(), key=lambda vm: vm.ip)), monitoring


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


def _monitoring(item: Fields, errors: list[ValidationError]) -> Monitoring | None:
    services = []
    for index, raw in enumerate(item.list("services", []) or []):
        entry = Fields(raw, f"{item.at('services')}[{index}]", errors)
        name, options = entry.string("name"), entry.raw("options", {})
        if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
            entry.error("options", "expected an object of strings")
            continue
        if name is None:
            continue
        # The same rules as the wire form: the entry as the management server would send it.
        line = f"[{name}]:" + "".join(f"{k}={v}:" for k, v in options.items())
        services += parse_config(line, entry.path, errors)
    excluded = item.list("excluded_checks", []) or []
    settings = item.raw("health_checks_config", {})
    if not isinstance(settings, dict):
        item.error("health_checks_config", f"expected an object, got {type_name(settings)}")
        settings = {}
    return Monitoring(tuple(services), bool(item.boolean("disabled", False)),
                      bool(item.boolean("health_checks_enabled", False)),
                      item.integer("basic_interval", None, lo=0, hi=1440),
                      item.integer("advanced_interval", None, lo=0, hi=1440),
                      tuple(str(x) for x in excluded), _canonical(settings))
