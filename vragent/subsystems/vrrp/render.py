"""What the VRRP role means for the rest of the router: the desired router for a role (pure)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Interface

from vragent.model import RouterState
from vragent.subsystems.vrrp.model import PRIMARY_ONLY, SUPERVISED, Role, settings


def shape(desired, state: RouterState, role: Role, release_vips: bool = False):
    """The desired router for this VRRP role (pure; `desired` is a desired.Desired)."""
    vrrp = settings(state)
    if vrrp is None:
        return desired
    primary = role is Role.PRIMARY
    links = desired.links
    addresses = dict(links.addresses)
    foreign: dict[str, frozenset[IPv4Interface]] = dict(links.foreign)
    for vip in vrrp.vips:
        if primary:
            # After the router's own address, so that stays the NIC's primary address.
            addresses[vip.device] = tuple(dict.fromkeys((*addresses.get(vip.device, ()), vip.interface)))
        elif not release_vips:
            foreign[vip.device] = foreign.get(vip.device, frozenset()) | {vip.interface}
    links = replace(links, addresses=addresses, foreign=foreign,
                    admin_up={**links.admin_up, **{device: primary for device in state.public_devices()}},
                    default_route=links.default_route if primary else None,
                    default_route6=links.default_route6 if primary else None,
                    policy=links.policy if primary else links.policy.without_gateways(),
                    public=links.public if primary else frozenset())
    daemons = [replace(d, standby=True) if not primary and d.enabled and d.service in PRIMARY_ONLY else d
               for d in desired.daemons]
    if release_vips:
        # Leaving the pair because keepalived is gone: restarting keepalived and conntrackd is
        # the supervisor's (systemd's) business, never this transition's; it leaves them alone.
        daemons = [d for d in daemons if d.service not in SUPERVISED]
    return replace(desired, links=links, daemons=daemons)
