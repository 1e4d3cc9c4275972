"""`guestnetwork` (guest_network.json): a guest network on one NIC.

Keyed by device: `add: false` removes it. Beware `cidr` is the prefix length.
The DHCP/DNS side (dns, domain_name) is stored for the dnsmasq subsystem.

A dual-stack VPC tier (SetGuestNetworkConfigItem) also carries `router_guest_ip6` (the
router's address in the tier), `router_guest_ip6_gateway` (the tier's IPv6 gateway: the
same address, or a redundant pair's VIP), `router_guest_ip6_cidr` (the tier's /64), `dns6`
(comma-joined) and the VPC's public side: `router_ip6`, `router_ip6_cidr` (eth1's address
and network) and `router_ip6_gateway` (the IPv6 default route). An empty or absent
`router_guest_ip6` is an IPv4-only tier.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address, IPv6Interface

from vragent.errors import ValidationError
from vragent.model import GuestNetwork, RouterState, TierIpv6
from vragent.context import Context
from vragent.fields import Fields, parse_ipv4, parse_ipv6_network

SLAAC_PREFIX = 64  # guests configure themselves by SLAAC: a /64 only (RFC 4862, 4291)

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
    if wanted is False:
        return GuestNetworkChange(device, None, fields.path) if device is not None else None
    # Every field is read (and every problem reported) before a bad device ends the parse.
    router_ip = fields.ipv4("router_guest_ip")
    prefix = fields.netmask_prefix("cidr", None)
    if prefix is None and not fields.has("cidr"):
        prefix = fields.netmask_prefix("router_guest_netmask")
    gateway = fields.ipv4("router_guest_gateway", None)
    dns = _dns_list(fields)
    domain = fields.domain("domain_name", "") or DEFAULT_DOMAIN
    mac = fields.mac("mac_address", None) or None
    mtu = fields.integer("mtu", None, lo=68, hi=65535)
    if router_ip is None or prefix is None or device is None or wanted is None:
        return None
    ipv6 = _tier_ipv6(fields)
    network = GuestNetwork(device=device, router_ip=router_ip, prefix=prefix,
                           gateway=gateway or router_ip, mac=mac,
                           dns=dns, domain=domain, mtu=mtu, ipv6=ipv6)
    if gateway is not None and gateway not in network.network:
        fields.error("router_guest_gateway", f"{gateway} is outside the guest network {network.network}")
        return None
    return GuestNetworkChange(device, network, fields.path)


def _ipv6_address(fields: Fields, key: str) -> IPv6Address | None:
    text = fields.string(key, None)
    if not text:
        return None
    try:
        address = IPv6Address(text)
    except ValueError:
        fields.error(key, f"{text!r} is not an IPv6 address")
        return None
    if address.is_multicast or address.is_unspecified or address.is_loopback or address.is_link_local:
        fields.error(key, f"{address} is not a global unicast address")
        return None
    return address


def _tier_ipv6(fields: Fields) -> TierIpv6 | None:
    """The tier's IPv6 side, or None for an IPv4-only tier; errors name their keys."""
    address = _ipv6_address(fields, "router_guest_ip6")
    if address is None:
        return None
    cidr = fields.string("router_guest_ip6_cidr", None)
    network = parse_ipv6_network(cidr, fields.at("router_guest_ip6_cidr"), fields.errors) if cidr else None
    if network is None:
        if not cidr:
            fields.error("router_guest_ip6_cidr", "is required with router_guest_ip6 (the tier's IPv6 network)")
        return None
    if network.prefixlen != SLAAC_PREFIX:
        fields.error("router_guest_ip6_cidr", f"{network}: guests configure themselves by SLAAC, which needs a /64")
        return None
    if address not in network:
        fields.error("router_guest_ip6", f"{address} is outside the tier's IPv6 network {network}")
        return None
    gateway = _ipv6_address(fields, "router_guest_ip6_gateway") or address
    if gateway not in network:
        fields.error("router_guest_ip6_gateway", f"{gateway} is outside the tier's IPv6 network {network}")
        return None
    dns = []
    for index, part in enumerate(p.strip() for p in (fields.string("dns6", "") or "").split(",")):
        if part:
            try:
                dns.append(IPv6Address(part))
            except ValueError:
                fields.errors.append(ValidationError(f"{fields.at('dns6')}[{index}]", f"{part!r} is not an IPv6 address"))
    public = None
    public_ip = _ipv6_address(fields, "router_ip6")
    if public_ip is not None:
        public_cidr = fields.string("router_ip6_cidr", None)
        public_net = parse_ipv6_network(public_cidr, fields.at("router_ip6_cidr"), fields.errors) if public_cidr else None
        prefix = public_net.prefixlen if public_net is not None else SLAAC_PREFIX
        public = IPv6Interface(f"{public_ip}/{prefix}")
        if public.network.overlaps(network):
            fields.error("router_ip6", f"the public IPv6 network {public.network} overlaps the tier's {network}")
            return None
    upstream = None
    upstream_text = fields.string("router_ip6_gateway", None)
    if upstream_text:
        try:
            upstream = IPv6Address(upstream_text)
        except ValueError:
            fields.error("router_ip6_gateway", f"{upstream_text!r} is not an IPv6 address")
            return None
    return TierIpv6(IPv6Interface(f"{address}/{network.prefixlen}"), gateway, tuple(dns), public, upstream)


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
