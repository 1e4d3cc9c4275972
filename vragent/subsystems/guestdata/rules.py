"""The data server's openings in vr-INPUT (pure)."""

from __future__ import annotations

from vragent.model import RouterState
from vragent.subsystems.guestdata import render as metadata
from vragent.tables import TableSpec, host, net


def input(state: RouterState, table: TableSpec) -> None:
    """Guests reach the data server (metadata 80, passwords 8080) on the router's guest
    address (and the gateway VIP of a pair, and each IP alias), from that address's own
    subnet only; no TLS (443)."""
    if not metadata.enabled(state):
        return
    networks = {n.device: n.network for n in state.all_guest_networks()}
    subnets = [subnet.network for subnet in state.guest_subnets()]
    for device, address in metadata.listen_addresses(state):
        source = next((network for network in subnets if address in network), networks[device])
        for port in metadata.PORTS:
            table.add("vr-INPUT", f"-s {net(source)} -d {host(address)} -i {device} "
                                  f"-p tcp -m tcp --dport {port} -j ACCEPT")
