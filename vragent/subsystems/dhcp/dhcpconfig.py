"""`dhcpconfig` (dhcp.json): extra DHCP ranges of a shared network with IP aliases.

The whole list is resent each time and replaces the section. The incumbent ignores it
(it takes each subnet's gateway from its VMs' dhcpentry pushes); vragent uses an entry's
`gateway` as the router option of the IP alias whose address is its `router_ip_address`,
and falls back to the VMs' default_gateway when there is none (model.guest_subnets).
Entries for addresses that are no alias of this router render nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vragent.model import DhcpRange, RouterState
from vragent.fields import Fields


@dataclass(frozen=True)
class DhcpConfigChange:
    ranges: tuple[DhcpRange, ...]


def parse(fields: Fields) -> DhcpConfigChange | None:
    entries = fields.list("entries", [])
    ranges = []
    for index, raw in enumerate(entries):
        item = Fields(raw, f"{fields.at('entries')}[{index}]", fields.errors)
        router_ip = item.ipv4("router_ip_address")
        gateway = item.ipv4("gateway", None)
        prefix = item.netmask_prefix("netmask")
        if router_ip is not None and prefix is not None:
            ranges.append(DhcpRange(router_ip, gateway, prefix))
    return DhcpConfigChange(tuple(ranges))


def merge(state: RouterState, change: DhcpConfigChange) -> RouterState:
    return replace(state, dhcp_ranges=change.ranges)
