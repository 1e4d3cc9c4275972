"""`guestnetwork` (guest_network.json): a guest network on one NIC.

Keyed by device: `add: false` removes it. Beware `cidr` is the prefix length.
The DHCP/DNS side (dns, domain_name) is stored for the dnsmasq subsystem.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address

from vragent.model import GuestNetwork, RouterState
from vragent.context import Context
from vragent.fields import Fields, parse_ipv4

DEFAULT_DOMAIN = "cloudnine.internal"  # what the incumbent substitutes for an empty domain


@dataclass(frozen=True)
class GuestNetworkChange:
    device: str
    network: GuestNetwork | None  # None: remove
    path: str


def parse(fields: Fields, context: Context) -> GuestNetworkChange | None:
    device = fields.device("device")
    # Whether the NIC may hold a guest network (not the control NIC, not a VPC's public
    # one) depends on the router type: validate.py checks it after the merge.
    if device is not None and not context.check_device(device, fields, "device"):
        device = None
    wanted = fields.boolean("add", True)
    if device is None or wanted is None:
        return None
    if not wanted:
        return GuestNetworkChange(device, None, fields.path)
    router_ip = fields.ipv4("router_guest_ip")
    prefix = fields.netmask_prefix("cidr", None)
    if prefix is None and not fields.has("cidr"):
        prefix = fields.netmask_prefix("router_guest_netmask")
    gateway = fields.ipv4("router_guest_gateway", None)
    dns = _dns_list(fields)
    domain = fields.string("domain_name", "") or DEFAULT_DOMAIN
    mtu = fields.integer("mtu", None, lo=68, hi=65535)
    if router_ip is None or prefix is None:
        return None
    network = GuestNetwork(device=device, router_ip=router_ip, prefix=prefix,
                           gateway=gateway or router_ip, mac=fields.string("mac_address", None),
                           dns=dns, domain=domain, mtu=mtu)
    if gateway is not None and gateway not in network.network:
        fields.error("router_guest_gateway", f"{gateway} is outside the guest network {network.network}")
        return None
    return GuestNetworkChange(device, network, fields.path)


def _dns_list(fields: Fields) -> tuple[IPv4Address, ...]:
    text = fields.string("dns", "") or ""
    servers = []
    for index, part in enumerate(p.strip() for p in text.split(",")):
        if part:
            address = parse_ipv4(part, f"{fields.at('dns')}[{index}]", fields.errors)
            if address is not None:
                servers.append(address)
    return tuple(servers)


def merge(state: RouterState, change: GuestNetworkChange) -> RouterState:
    networks = {n.device: n for n in state.guest_networks}
    acls = state.network_acls
    if change.network is None:
        networks.pop(change.device, None)
        # A removed tier's ACL goes with it: a new tier plugged on the same NIC later must not
        # inherit it (the incumbent keeps asserting the old rules until the next ACL push).
        acls = tuple(acl for acl in acls if acl.device != change.device)
    else:
        networks[change.device] = change.network
    return replace(state, guest_networks=tuple(networks[d] for d in sorted(networks)), network_acls=acls)


def origins(change: GuestNetworkChange) -> list[tuple[object, str]]:
    return [(change.network, change.path)] if change.network else []
