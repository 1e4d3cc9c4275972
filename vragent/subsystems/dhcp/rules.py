"""DHCP and DNS from the guests, in vr-INPUT (pure)."""

from __future__ import annotations

from vragent.model import GUEST_DEVICE, RouterState
from vragent.tables import TableSpec, net


def input(state: RouterState, table: TableSpec) -> None:
    """DHCP on each guest NIC, DNS from each guest network and IP alias subnet."""
    chain = "vr-INPUT"
    for guest in state.all_guest_networks():
        # DHCP requests come from 0.0.0.0, so only the NIC can be matched.
        table.add(chain, f"-i {guest.device} -p udp -m udp --dport 67 -j ACCEPT")
        for proto in ("udp", "tcp"):
            table.add(chain, f"-s {net(guest.network)} -i {guest.device} -p {proto} -m {proto} --dport 53 -j ACCEPT")
    for alias in state.ip_aliases:  # a shared network's further subnets, on the guest NIC
        for proto in ("udp", "tcp"):
            table.add(chain, f"-s {net(alias.network)} -i {GUEST_DEVICE} -p {proto} -m {proto} "
                             "--dport 53 -j ACCEPT")
