"""`cmdline` (cmd_line.json): the router's boot parameters, all strings.

The incumbent replaces the whole `config` section with each push and normalises
`redundant_router` to "true"/"false"; so do we.
"""

from __future__ import annotations

from dataclasses import dataclass

from vragent.model import RouterState
from vragent.wire.fields import Fields, parse_ipv4, parse_prefix

SUPPORTED_ROUTER_TYPES = ("router",)
_ADDRESS_KEYS = ("eth0ip", "eth1ip", "eth2ip", "gateway", "guestgw", "dns1", "dns2",
                 "internaldns1", "internaldns2", "localgw")
_MASK_KEYS = ("eth0mask", "eth1mask", "eth2mask")


@dataclass(frozen=True)
class CmdlineChange:
    values: tuple[tuple[str, str], ...]
    path: str = ""  # JSON path of the cmd_line section, for errors found after the merge


def parse(fields: Fields) -> CmdlineChange | None:
    raw = fields.raw("cmd_line")
    if not isinstance(raw, dict):
        if raw is not None:
            fields.error("cmd_line", "expected an object of key=value strings")
        return None
    section = Fields(raw, fields.at("cmd_line"), fields.errors)
    values: dict[str, str] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if isinstance(value, (dict, list)):
            section.error(key, "expected a string value")
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "\n" in text or "\r" in text or "\0" in text:
            section.error(key, "must not contain line breaks or NUL characters")
            continue
        values[key] = text
    router_type = values.get("type")
    if router_type is None:
        section.error("type", "is required")
    elif router_type not in SUPPORTED_ROUTER_TYPES:
        section.error("type", f"router type {router_type!r} is not supported yet "
                              f"(supported: {', '.join(SUPPORTED_ROUTER_TYPES)})")
    for key in _ADDRESS_KEYS:
        if values.get(key):
            parse_ipv4(values[key], section.at(key), fields.errors)
    for key in _MASK_KEYS:
        if values.get(key) and parse_prefix(values[key]) is None:
            section.error(key, f"{values[key]!r} is not a netmask")
    for device in ("eth0", "eth1", "eth2"):
        if values.get(f"{device}ip") and values[f"{device}ip"] != "0.0.0.0" and not values.get(f"{device}mask"):
            section.error(f"{device}mask", f"is required with {device}ip")
    if values.get("mtu") and not (values["mtu"].isdigit() and 68 <= int(values["mtu"]) <= 65535):
        section.error("mtu", f"{values['mtu']!r} is not an MTU (68..65535)")
    if "redundant_router" in values:
        values["redundant_router"] = "true" if values["redundant_router"].lower() in ("true", "1") else "false"
    return CmdlineChange(tuple(sorted(values.items())), fields.at("cmd_line"))


def merge(state: RouterState, change: CmdlineChange) -> RouterState:
    return state.with_cmdline(dict(change.values))


# The key the cmd_line section's path is known by in `origins` (checks after the merge).
ORIGIN = "cmdline"


def origins(change: CmdlineChange) -> list[tuple[object, str]]:
    return [(ORIGIN, change.path)]
