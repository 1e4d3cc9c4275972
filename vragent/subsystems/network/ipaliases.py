"""`ipaliases` (ip_aliases.json): further subnets of a shared network, as addresses of the
router on its guest NIC (cloudstack-vr-wave2.md 1.8).

Gson names the Java fields of IpAddressAlias: `revoke`, `ip_address` (from `IpAddress`),
`netmask` and `count` (the management server's alias number; `alias_count` in the
transfer object it is made from, accepted too). Keyed by address: `revoke: false` adds
or replaces an alias, `revoke: true` removes it. A DeleteIpAliasCommand sends the revoked
aliases together with every one still active, so a push is a set of changes, not a list
to replace the section with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address

from vragent.model import IpAlias, RouterState
from vragent.fields import Fields


@dataclass(frozen=True)
class IpAliasChange:
    add: tuple[tuple[IpAlias, str], ...]  # (alias, json path)
    revoke: tuple[tuple[IPv4Address, str], ...]


def parse(fields: Fields) -> IpAliasChange | None:
    entries = fields.list("aliases")
    if entries is None:
        return None
    add: dict[IPv4Address, tuple[IpAlias, str]] = {}
    revoke: dict[IPv4Address, str] = {}
    for index, entry in enumerate(entries):
        item = Fields(entry, f"{fields.at('aliases')}[{index}]", fields.errors)
        ip = item.ipv4("ip_address")
        revoked = item.boolean("revoke", False)
        for key in ("count", "alias_count"):
            item.integer(key, None, lo=0)
        prefix = item.netmask_prefix("netmask", None) if revoked else item.netmask_prefix("netmask")
        if ip is None or revoked is None:
            continue
        if ip in add or ip in revoke:
            item.error("ip_address", f"{ip} is listed twice in this push")
            continue
        if revoked:
            revoke[ip] = item.path
            continue
        if prefix is None:
            continue
        if prefix > 30:
            item.error("netmask", f"/{prefix} leaves no address for a VM beside the router's")
            continue
        alias = IpAlias(ip, prefix)
        if ip in (alias.network.network_address, alias.network.broadcast_address):
            item.error("ip_address", f"{ip} is the network or broadcast address of {alias.network}")
            continue
        add[ip] = (alias, item.path)
    return IpAliasChange(tuple(add.values()), tuple(revoke.items()))


def merge(state: RouterState, change: IpAliasChange) -> RouterState:
    aliases = {a.ip: a for a in state.ip_aliases}
    for ip, _ in change.revoke:
        aliases.pop(ip, None)
    for alias, _ in change.add:
        aliases[alias.ip] = alias
    return replace(state, ip_aliases=tuple(sorted(aliases.values())))


def origins(change: IpAliasChange) -> list[tuple[object, str]]:
    return list(change.add)
