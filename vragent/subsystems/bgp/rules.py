"""Rules of routed networks and their BGP peers, filled into the pipeline's tables."""

from __future__ import annotations

from vragent.model import RouterState
from vragent.subsystems.bgp.render import enabled
from vragent.tables import TableSpec, host


def input(state: RouterState, table: TableSpec) -> None:
    """filter vr-bgp (last in vr-INPUT, absent without peers): BGP (tcp 179) from each IPv4
    peer; the router's own sessions to them come back as established."""
    if not enabled(state):
        return
    chain = "vr-bgp"
    table.add("vr-INPUT", f"-j {chain}")
    for address in sorted({p.ip4 for p in state.bgp_peers if p.ip4 is not None}):
        table.add(chain, f"-s {host(address)} -p tcp -m tcp --dport 179 -j ACCEPT")
