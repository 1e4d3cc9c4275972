"""The `remote_access_vpn` and `vpn_users` sections of the state document (schema:
schema/state.schema.json).

Both are left out while empty, so routers without a VPN keep the document they always
had. They hold secrets (the pre-shared key, the users' passwords): the state file is
mode 0600, and a printed diff masks them (redact.py).
"""

from __future__ import annotations

from vragent.errors import ValidationError
from vragent.model import RemoteAccessVpn, VpnUser
from vragent.fields import Fields, parse_ipv4_network

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms a push)
if TYPE_CHECKING:
    from typing import Any

VPN, USERS = "remote_access_vpn", "vpn_users"


def to_document(vpn: RemoteAccessVpn | None, users: tuple[VpnUser, ...]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if vpn is not None:
        doc[VPN] = {"public_ip": str(vpn.public_ip), "ip_range": vpn.ip_range, "local_ip": str(vpn.local_ip),
                    "local_cidr": str(vpn.local_cidr) if vpn.local_cidr else None,
                    "public_interface": vpn.public_interface, "preshared_key": vpn.preshared_key}
    if users:
        doc[USERS] = [{"user": u.name, "password": u.password} for u in users]
    return doc


def load_trusted(data: dict) -> tuple[RemoteAccessVpn | None, tuple[VpnUser, ...]]:
    from ipaddress import IPv4Network

    from vragent.fields import document_address as _address

    raw = data.get(VPN)
    vpn = None
    if raw is not None:
        first, _, last = raw["ip_range"].partition("-")
        vpn = RemoteAccessVpn(_address(raw["public_ip"]), _address(first), _address(last), _address(raw["local_ip"]),
                              raw["preshared_key"], IPv4Network(raw["local_cidr"]) if raw.get("local_cidr") else None,
                              raw.get("public_interface", "eth2"))
    users = tuple(VpnUser(u["user"], u["password"]) for u in data.get(USERS, ()))
    return vpn, users


def from_document(doc: Fields, errors: list[ValidationError]) -> tuple[RemoteAccessVpn | None, tuple[VpnUser, ...]]:
    """A native document's sections, validated as the wire forms are (same rules, same messages)."""
    from vragent.subsystems.vpn.remoteaccessvpn import parse_range, psk_problem
    from vragent.subsystems.vpn.vpnuserlist import password_problem, valid_name

    vpn = None
    raw = doc.raw(VPN, None)
    if raw is not None:
        item = Fields(raw, doc.at(VPN), errors)
        before = len(errors)
        public_ip, ip_range, local_ip = item.ipv4("public_ip"), parse_range(item, "ip_range"), item.ipv4("local_ip")
        cidr = item.string("local_cidr", None)
        local_cidr = parse_ipv4_network(cidr, item.at("local_cidr"), errors) if cidr else None
        device = item.device("public_interface", "eth2")
        psk = item.raw("preshared_key")
        if psk is not None and (problem := psk_problem(psk)) is not None:
            item.error("preshared_key", problem)
        if len(errors) == before:
            vpn = RemoteAccessVpn(public_ip, ip_range[0], ip_range[1], local_ip, psk, local_cidr, device)
    users: dict[str, VpnUser] = {}
    for index, entry in enumerate(doc.list(USERS, []) or []):
        item = Fields(entry, f"{doc.at(USERS)}[{index}]", errors)
        name, password = item.string("user"), item.raw("password")
        if name is not None and not valid_name(name):
            item.error("user", f"{name[:64]!r} is not a VPN user name")
            continue
        if password is not None and (problem := password_problem(password)) is not None:
            item.error("password", problem)
            continue
        if name is None or password is None:
            continue
        if name in users:
            item.error("user", f"{name} is listed twice")
            continue
        users[name] = VpnUser(name, password)
    return vpn, tuple(sorted(users.values(), key=lambda u: u.name))


# -- site_to_site_vpns: one connection per peer gateway (subsystems/vpn/site2sitevpn.py) ---------------
S2S = "site_to_site_vpns"
_S2S_FLAGS = ("dpd", "passive", "encap", "split")


def s2s_to_document(vpns) -> dict[str, Any]:
    if not vpns:
        return {}
    return {S2S: [{"peer": str(v.peer), "local_ip": str(v.local_ip), "local_cidr": str(v.local_cidr),
                   "peer_cidrs": [str(c) for c in v.peer_cidrs], "ike_policy": v.ike_policy,
                   "esp_policy": v.esp_policy, "ike_lifetime": v.ike_lifetime, "esp_lifetime": v.esp_lifetime,
                   "preshared_key": v.preshared_key, "ike_version": v.ike_version}
                  | {flag: getattr(v, flag) for flag in _S2S_FLAGS} for v in vpns]}


def s2s_load_trusted(data: dict) -> tuple:
    from ipaddress import IPv4Network

    from vragent.model import SiteToSiteVpn
    from vragent.fields import document_address as _address

    return tuple(SiteToSiteVpn(_address(v["peer"]), _address(v["local_ip"]), IPv4Network(v["local_cidr"]),
                               tuple(IPv4Network(c) for c in v["peer_cidrs"]), v["ike_policy"], v["esp_policy"],
                               v["ike_lifetime"], v["esp_lifetime"], v["preshared_key"],
                               ike_version=v.get("ike_version", "ike"),
                               **{flag: v.get(flag, False) for flag in _S2S_FLAGS})
                 for v in data.get(S2S, ()))


def s2s_from_document(doc: Fields, errors: list[ValidationError]) -> tuple:
    """A native document's connections, validated as the wire form is (same messages)."""
    from vragent.subsystems.vpn import site2sitevpn

    found = {}
    for index, raw in enumerate(doc.list(S2S, []) or []):
        item = Fields(raw, f"{doc.at(S2S)}[{index}]", errors)
        wire = dict(raw) if isinstance(raw, dict) else {}
        renamed = {"peer": "peer_gateway_ip", "local_ip": "local_public_ip", "local_cidr": "local_guest_cidr",
                   "preshared_key": "ipsec_psk", "split": "split_connections"}
        for ours, theirs in renamed.items():
            if ours in wire:
                wire[theirs] = wire.pop(ours)
        if isinstance(wire.get("peer_cidrs"), list):
            wire["peer_guest_cidr_list"] = ",".join(str(c) for c in wire.pop("peer_cidrs"))
        before = len(errors)
        change = site2sitevpn.parse(Fields(wire, item.path, errors))
        # The wire form's messages, at this document's key names.
        back = {f"{item.path}.{theirs}": f"{item.path}.{ours}"
                for ours, theirs in (*renamed.items(), ("peer_cidrs", "peer_guest_cidr_list"))}
        errors[before:] = [ValidationError(back.get(e.path, e.path), e.message) for e in errors[before:]]
        if change is None or change.vpn is None:
            continue
        if change.peer in found:
            item.error("peer", f"{change.peer} is listed twice")
            continue
        found[change.peer] = change.vpn
    return tuple(found[p] for p in sorted(found))
