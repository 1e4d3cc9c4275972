"""Addresses, default route, policy routing and MTU of the router's NICs (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address

from vragent.model import GUEST_DEVICE, PUBLIC_DEVICE, RouterState
from vragent.netlink import Route
from vragent.render import routing, static_routes

VPC_MANAGED_NICS = 100  # eth0..eth99, every NIC name the wire format accepts (wire/fields.py)


@dataclass(frozen=True)
class LinkPlan:
    # device -> addresses; only devices listed here are managed (others are never touched)
    addresses: dict[str, tuple[IPv4Interface, ...]]
    default_route: tuple[IPv4Address, str] | None
    mtu: dict[str, int]
    public: frozenset[IPv4Interface]  # addresses that announce themselves with gratuitous ARP
    # Redundant pairs (vragent.redundancy): NICs whose admin state the role decides (device -> up),
    # and addresses keepalived owns that the plan neither adds nor removes (device -> addresses).
    admin_up: dict[str, bool] = field(default_factory=dict)
    foreign: dict[str, frozenset[IPv4Interface]] = field(default_factory=dict)
    policy: routing.PolicyRouting = field(default_factory=routing.PolicyRouting)
    # A dual-stack router's IPv6 default route (gateway, device); its addresses are in `addresses`.
    default_route6: tuple[IPv6Address, str] | None = None
    # A VPC router's static routes in the main table (render/static_routes.py).
    static_routes: frozenset[Route] = frozenset()
    # The router's IPv6 went away (render/netfilter6.withdraw): its IPv6 default route goes too.
    withdraw_route6: bool = False


def render(state: RouterState) -> LinkPlan:
    addresses: dict[str, list[IPv4Interface]] = {}
    mtu: dict[str, int] = {}
    control = state.control_interface
    if control is not None:
        addresses.setdefault(state.layout.control, []).append(control)
    for guest in state.all_guest_networks():
        addresses.setdefault(guest.device, []).append(guest.interface)
        if guest.mtu:
            mtu[guest.device] = guest.mtu
    for alias in state.ip_aliases:  # after the guest address, which stays the NIC's primary one
        addresses.setdefault(GUEST_DEVICE, []).append(alias.interface)
    public = []
    for pip in state.ordered_public_ips():
        addresses.setdefault(pip.device, []).append(pip.interface)
        public.append(pip.interface)
        if pip.mtu:
            mtu[pip.device] = pip.mtu
    for pgw in state.private_gateways:  # a VPC's private gateways (model.PrivateGateway)
        addresses.setdefault(pgw.device, []).append(pgw.interface)
        public.append(pgw.interface)  # announced like a public IP: it is new on its segment too
        if pgw.mtu:
            mtu[pgw.device] = pgw.mtu
    if state.is_vpc:
        # Every NIC of a VPC router is CloudStack's (control, public, tiers): one whose tier
        # went loses its address. (Listing a NIC the router lacks is harmless: the plan
        # never invents one.) An isolated router manages the NICs it configures only.
        for index in range(VPC_MANAGED_NICS):
            addresses.setdefault(f"eth{index}", [])
    ipv6 = state.ipv6
    default_route6 = None
    for tier in state.vpc_ipv6_tiers():  # a dual-stack VPC: after each tier's IPv4 address
        addresses.setdefault(tier.device, []).append(tier.ipv6.address)
    if state.vpc_public6 is not None:
        public6, upstream6 = state.vpc_public6
        addresses.setdefault(state.layout.public, []).append(public6)
        if upstream6 is not None:
            default_route6 = (upstream6, state.layout.public)
    if ipv6 is not None:
        # After the IPv4 address, which stays the NIC's primary one.
        addresses.setdefault(GUEST_DEVICE, []).append(ipv6.guest)
        if ipv6.public is not None:
            addresses.setdefault(PUBLIC_DEVICE, []).append(ipv6.public)
        if ipv6.upstream_gateway is not None:
            default_route6 = (ipv6.upstream_gateway, PUBLIC_DEVICE)
    return LinkPlan(
        addresses={dev: tuple(dict.fromkeys(ifaces)) for dev, ifaces in sorted(addresses.items())},
        default_route=state.default_gateway,
        default_route6=default_route6,
        mtu=mtu,
        public=frozenset(public),
        policy=routing.render(state),
        static_routes=static_routes.render(state),
    )
