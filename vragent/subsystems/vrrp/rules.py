"""A redundant pair's openings in vr-INPUT: VRRP and conntrackd's sync from the peer (pure)."""

from __future__ import annotations

from vragent.model import RouterState
from vragent.subsystems.vrrp import model as redundancy
from vragent.tables import TableSpec, host


def input(state: RouterState, table: TableSpec) -> None:
    """A redundant pair hears its peer on the VRRP NIC: VRRP advertisements and conntrackd's
    state sync (CloudStack #1064: without these both routers become master)."""
    vrrp = redundancy.settings(state)
    if vrrp is None:
        return
    # iptables-save names protocol 112 after /etc/protocols (netbase), as on every VR.
    table.add("vr-INPUT", f"-d {host(redundancy.VRRP_GROUP)} -i {vrrp.interface} -p vrrp -j ACCEPT")
    table.add("vr-INPUT", f"-d {host(redundancy.SYNC_GROUP)} -i {vrrp.interface} -p udp -m udp "
                          f"--dport {redundancy.SYNC_PORT} -j ACCEPT")
