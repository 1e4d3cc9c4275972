"""What the VRRP role means for the rest of the router: the desired router for a role (pure)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Interface

from vragent.model import RouterState
from vragent.subsystems.vrrp.model import PRIMARY_ONLY, SUPERVISED, Role, Vip, enabled, settings


def standby_down_devices(state: RouterState) -> tuple[str, ...]:
    """The NICs a router that is not PRIMARY keeps down: every public NIC (both routers share
    its MAC and IPs) and, on a VPC, every private gateway's NIC. The management server sends
    a private gateway as a public IP (nw_type Public) with the same address and MAC to both
    routers, so it moves by link state like a public NIC: UP on the PRIMARY, DOWN on the
    BACKUP (CloudStack's test_04_rvpc_privategw_static_routes checks exactly that)."""
    from vragent.values import device_index

    devices = {*state.public_devices(), *(p.device for p in state.private_gateways)}
    return tuple(sorted(devices, key=device_index))


def ipv6_gateway_vips(state: RouterState) -> list:
    """(NIC, gateway/prefix) of each IPv6 guest network whose gateway is not the router's own
    address there: an isolated pair's guestgw6, a VPC pair's tiers' IPv6 gateways."""
    from ipaddress import IPv6Interface

    from vragent.values import GUEST_DEVICE

    found = []
    ipv6 = state.ipv6
    if ipv6 is not None and ipv6.gateway != ipv6.guest.ip:
        found.append((GUEST_DEVICE, IPv6Interface(f"{ipv6.gateway}/{ipv6.guest.network.prefixlen}")))
    for tier in state.vpc_ipv6_tiers():
        if tier.ipv6.gateway != tier.ipv6.address.ip:
            found.append((tier.device, IPv6Interface(f"{tier.ipv6.gateway}/{tier.ipv6.network.prefixlen}")))
    return found


def shape(desired, state: RouterState, role: Role, release_vips: bool = False,
          held_vips: frozenset[Vip] = frozenset()):
    """The desired router for this VRRP role (pure; `desired` is a desired.Desired).

    `held_vips`: the VIPs of the keepalived.conf keepalived runs with now (vrrp.service
    .configured_vips). One the state no longer has (its tier removed) is keepalived's to remove
    when it reloads: deleting a VIP behind a MASTER's back makes it go BACKUP and back (a
    transition, seen in the lab with keepalived 2.2.7)."""
    vrrp = settings(state)
    if vrrp is None and not (enabled(state) and state.is_vpc):
        return desired
    # A redundant VPC router without a tier yet runs no VRRP: it stays standby, as the
    # incumbent's set_backup without a guest NIC, so two routers never share the public side.
    primary = role is Role.PRIMARY and vrrp is not None
    down = standby_down_devices(state)
    links = desired.links
    addresses = dict(links.addresses)
    foreign: dict[str, frozenset[IPv4Interface]] = dict(links.foreign)
    for vip in vrrp.vips if vrrp is not None else ():
        if primary:
            # After the router's own address, so that stays the NIC's primary address.
            addresses[vip.device] = tuple(dict.fromkeys((*addresses.get(vip.device, ()), vip.interface)))
        elif not release_vips:
            foreign[vip.device] = foreign.get(vip.device, frozenset()) | {vip.interface}
    if primary:
        for vip in held_vips - set(vrrp.vips):
            foreign[vip.device] = foreign.get(vip.device, frozenset()) | {vip.interface}
        for device, interface in ipv6_gateway_vips(state):
            # The guests' IPv6 gateway (guestgw6, a VPC tier's router_guest_ip6_gateway) is the
            # PRIMARY's alone, as the incumbent's _add_ipv6_guest_gateway; elsewhere the plan
            # removes it like any unwanted address.
            addresses[device] = tuple(dict.fromkeys((*addresses.get(device, ()), interface)))
    links = replace(links, addresses=addresses, foreign=foreign,
                    admin_up={**links.admin_up, **{device: primary for device in down}},
                    default_route=links.default_route if primary else None,
                    default_route6=links.default_route6 if primary else None,
                    policy=links.policy if primary else links.policy.without_gateways(),
                    # The kernel refuses routes via a down link: a BACKUP keeps those via tiers only.
                    static_routes=links.static_routes if primary else
                    frozenset(r for r in links.static_routes if r.device not in down),
                    public=links.public if primary else frozenset())
    daemons = [replace(d, standby=True) if not primary and d.enabled and d.service in PRIMARY_ONLY else d
               for d in desired.daemons]
    if release_vips:
        # Leaving the pair because keepalived is gone: restarting keepalived and conntrackd is
        # the supervisor's (systemd's) business, never this transition's; it leaves them alone.
        daemons = [d for d in daemons if d.service not in SUPERVISED]
    return replace(desired, links=links, daemons=daemons)
