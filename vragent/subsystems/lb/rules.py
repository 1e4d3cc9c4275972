"""HAProxy's listeners in vr-INPUT (vr-lb) (pure)."""

from __future__ import annotations

from vragent.model import RouterState
from vragent.tables import TableSpec, host, join, net


def input(state: RouterState, table: TableSpec) -> None:
    """INPUT accepts for exactly the IP:port pairs HAProxy listens on (vr-lb, last in
    vr-INPUT). Absent while no load balancer exists. Public IPs are still gated first by
    their ingress firewall (mangle vr-fw-<ip>), as for port forwarding."""
    accepts = state.load_balancing.accepts()
    if not accepts:
        return
    chain = "vr-lb"
    table.add("vr-INPUT", f"-j {chain}")
    rules: dict[str, None] = {}
    for accept in accepts:
        destination = f"-d {host(accept.ip)}" if accept.ip is not None else ""
        for source in accept.sources or (None,):
            origin = f"-s {net(source)}" if source is not None else ""
            rules[join(origin, destination, f"-p tcp -m tcp --dport {accept.port}", "-j ACCEPT")] = None
    for rule in rules:
        table.add(chain, rule)
