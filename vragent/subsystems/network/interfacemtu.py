"""`interfacemtu`: vragent's own document for the management server's MTU change.

`updateNetwork` with a new public or guest MTU makes the management server run
`update_interface_config.sh IP PREFIX MTU TIMEOUT` (VirtualRoutingResource's
UpdateNetworkCommand) instead of a push. The shim (vragent/cloudscripts.py) turns it into
this document, so the MTU becomes desired state: applied now, and kept by every later push
that does not send an MTU itself. `{"type": "interfacemtu", "ip_address": IP, "mtu": N}`
sets the MTU of the NIC holding IP: a public IP's (all IPs of that NIC), a guest network's
router address, or a private gateway's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address

from vragent.model import RouterState
from vragent.fields import Fields


@dataclass(frozen=True)
class MtuChange:
    ip: IPv4Address
    mtu: int


def parse(fields: Fields) -> MtuChange | None:
    ip = fields.ipv4("ip_address")
    mtu = fields.integer("mtu", None, lo=68, hi=65535)
    if ip is None or mtu is None:
        return None
    return MtuChange(ip, mtu)


def device_of(state: RouterState, ip: IPv4Address) -> str | None:
    for item in (*state.public_ips, *state.private_gateways):
        if item.ip == ip:
            return item.device
    for guest in state.all_guest_networks():
        if guest.router_ip == ip:
            return guest.device
    return None


def merge(state: RouterState, change: MtuChange) -> RouterState:
    device = device_of(state, change.ip)
    if device is None:
        return state  # the shim reports "Interface with IP ... not found" before applying
    return replace(
        state,
        public_ips=tuple(replace(p, mtu=change.mtu) if p.device == device else p for p in state.public_ips),
        private_gateways=tuple(replace(p, mtu=change.mtu) if p.device == device else p
                               for p in state.private_gateways),
        guest_networks=tuple(replace(g, mtu=change.mtu) if g.device == device else g
                             for g in state.guest_networks))
