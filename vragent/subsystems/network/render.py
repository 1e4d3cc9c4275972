"""Addresses, default route, policy routing and MTU of the router's NICs (pure)."""

from __future__ import annotations

from ipaddress import IPv4Interface

from vragent.model import GUEST_DEVICE, PUBLIC_DEVICE, RouterState
from vragent.subsystems.network import routing, static_routes
from vragent.desired import LinkPlan

VPC_MANAGED_NICS = 100  # eth0..eth99, every NIC name the wire format accepts (fields.py)


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
