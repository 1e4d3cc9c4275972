"""`remoteaccessvpn` (remote_access_vpn.json): L2TP/IPsec for remote users on a public IP.

Fields (cloudstack-vr-wave2.md §5.2, Gson snake_case, nulls omitted): `create`,
`vpn_server_ip`, `ip_range` ("10.1.2.2-10.1.2.8"), `local_ip`, `local_cidr`,
`preshared_key`, `public_interface` and, from newer management servers, `vpn_type`
(only "l2tp" is served). The incumbent keys its bag by `vpn_server_ip`; `create: false`
removes that VPN, and vragent then really stops it (the incumbent only dropped its
iptables rules). A router serves one remote-access VPN: a new one replaces the old.

The pre-shared key is a secret: no error message repeats it, and it reaches only the
state (mode 0600) and strongSwan's own file (mode 0600); diffs and archives mask it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address

from vragent.model import RemoteAccessVpn, RouterState
from vragent.fields import Fields, ipv4_or_none, parse_ipv4_network

VPN_TYPES = ("l2tp",)
# swanctl.conf holds the key as a quoted string: no quote, backslash or control character.
PSK_MAX = 256


@dataclass(frozen=True)
class VpnChange:
    vpn: RemoteAccessVpn | None  # None: `create: false`
    public_ip: IPv4Address
    path: str


def psk_problem(value: object) -> str | None:
    """Why `value` cannot be the pre-shared key (the key itself is never repeated)."""
    if not isinstance(value, str):
        return "expected a string"
    if not value:
        return "is empty"
    if len(value) > PSK_MAX:
        return f"is longer than {PSK_MAX} characters"
    if not value.isascii() or not value.isprintable() or '"' in value or "\\" in value:
        return "must be printable ASCII without quotes or backslashes (not shown)"
    return None


def parse_range(fields: Fields, key: str) -> tuple[IPv4Address, IPv4Address] | None:
    text = fields.string(key)
    if text is None:
        return None
    first, dash, last = text.strip().partition("-")
    start, end = ipv4_or_none(first.strip()), ipv4_or_none(last.strip()) if dash else None
    if start is None or end is None:
        fields.error(key, f"{text!r} is not a range of IPv4 addresses (first-last)")
        return None
    if start > end:
        fields.error(key, f"{text!r}: the first address is above the last")
        return None
    return start, end


def parse(fields: Fields) -> VpnChange | None:
    errors_before = len(fields.errors)
    public_ip = fields.ipv4("vpn_server_ip")
    create = fields.boolean("create", True)
    vpn_type = fields.string("vpn_type", "l2tp")
    if vpn_type is not None and vpn_type.lower() not in VPN_TYPES:
        fields.error("vpn_type", f"{vpn_type!r} is not supported yet (only l2tp: L2TP/IPsec with a pre-shared key)")
    if not create:
        if len(fields.errors) > errors_before or public_ip is None:
            return None
        return VpnChange(None, public_ip, fields.path)
    ip_range = parse_range(fields, "ip_range")
    local_ip = fields.ipv4("local_ip")
    local_cidr = None
    cidr = fields.string("local_cidr", None)
    if cidr:
        local_cidr = parse_ipv4_network(cidr.strip(), fields.at("local_cidr"), fields.errors)
    device = fields.device("public_interface", "eth2")
    psk = fields.raw("preshared_key")
    if psk is not None and (problem := psk_problem(psk)) is not None:
        fields.error("preshared_key", problem)
    if len(fields.errors) > errors_before or None in (public_ip, ip_range, local_ip, device, psk):
        return None
    vpn = RemoteAccessVpn(public_ip, ip_range[0], ip_range[1], local_ip, psk, local_cidr, device)
    return VpnChange(vpn, public_ip, fields.path)


def merge(state: RouterState, change: VpnChange) -> RouterState:
    current = state.remote_access_vpn
    if change.vpn is None:
        if current is not None and current.public_ip == change.public_ip:
            return replace(state, remote_access_vpn=None)
        return state  # nothing served there: nothing to stop
    return replace(state, remote_access_vpn=change.vpn)


def origins(change: VpnChange) -> list[tuple[object, str]]:
    return [(change.vpn, change.path)] if change.vpn is not None else []
