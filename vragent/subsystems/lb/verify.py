"""Load balancers checked against the router: listeners on held addresses, no clash with NAT, backends in guest networks (pure)."""

from __future__ import annotations


from vragent.errors import ValidationError, origin_of
from vragent.fields import ipv4_or_none
from vragent.model import LoadBalancing, Protocol, RouterState


# -- load balancing --------------------------------------------------------------------

def _check_binds(cs, local: set, path: str) -> list[ValidationError]:
    """Every `bind` of the management server's configuration on an address the router holds
    once this push is applied (or on any address). `haproxy -c` does not bind: a listener on
    an address the router lacks passes the check, and the reload then fails while the live
    listeners refuse connections for the seconds the rollback takes."""
    errors = []
    for number, line in enumerate(cs.configuration, start=1):
        words = line.split()
        if len(words) < 2 or words[0] != "bind":
            continue
        address = words[1].rpartition(":")[0]
        if address in ("", "*", "0.0.0.0"):
            continue
        ip = ipv4_or_none(address)
        if ip is not None and ip not in local:
            errors.append(ValidationError(f"{path}.configuration", f"line {number} ({line.strip()[:80]}): {ip} is "
                                                                    "not an address of this router, so HAProxy could "
                                                                    "not listen there"))
    return errors


def check_load_balancing(state: RouterState, origins: dict[int, tuple[object, str]]) -> list[ValidationError]:
    """Listeners on addresses the router holds, no clash with NAT, backends in guest networks,
    and a stats page on a public IP only when the document says so."""
    lb = state.load_balancing
    if lb == LoadBalancing():
        return []
    errors: list[ValidationError] = []
    public = {p.ip for p in state.ordered_public_ips()}
    local = set(public) | set(state.own_guest_addresses())
    if state.control_interface is not None:
        local.add(state.control_interface.ip)
    forwarded: dict[object, list] = {}  # public ip -> its TCP port-forwarded ranges
    for rule in state.port_forwards:
        if rule.protocol is Protocol.TCP:
            forwarded.setdefault(rule.public_ip, []).append(rule.public_ports)
    static_nat = {n.public_ip for n in state.static_nats}
    guests = state.all_guest_networks()

    def check_listener(ip, port: int, path: str) -> None:
        if ip is None:
            return
        if ip not in local:
            errors.append(ValidationError(path, f"{ip} is not an address of this router"))
        elif ip in static_nat:
            errors.append(ValidationError(path, f"{ip} has static NAT: every port of it goes to a VM, "
                                                "none reaches HAProxy"))
        elif any(r.first <= port <= r.last for r in forwarded.get(ip, ())):
            errors.append(ValidationError(path, f"{ip}:{port} is port-forwarded to a VM; HAProxy would never see it"))

    if lb.cloudstack is not None:
        errors += _check_binds(lb.cloudstack, local, origin_of(origins, lb.cloudstack, "state:load_balancing.cloudstack"))
        for index, accept in enumerate(lb.cloudstack.listeners):
            check_listener(accept.ip, accept.port,
                           origin_of(origins, accept, f"state:load_balancing.cloudstack.listeners[{index}]"))
        for index, accept in enumerate(lb.cloudstack.stats):
            check_listener(accept.ip, accept.port,
                           origin_of(origins, accept, f"state:load_balancing.cloudstack.stats[{index}]"))
    for index, balancer in enumerate(lb.balancers):
        path = origin_of(origins, balancer, f"state:load_balancing.balancers[{index}]")
        check_listener(balancer.ip, balancer.port, path)
        for b_index, backend in enumerate(balancer.backends):
            if guests and not any(backend.ip in n.network for n in guests):
                errors.append(ValidationError(f"{path}.backends[{b_index}]",
                                              f"{backend.ip} is in no guest network of this router"))
    if lb.stats is not None:
        path = origin_of(origins, lb.stats, "state:load_balancing.stats")
        check_listener(lb.stats.ip, lb.stats.port, path)
        if lb.stats.ip in public and not lb.stats.public:
            errors.append(ValidationError(path, f"{lb.stats.ip} is a public IP: the stats page goes there only "
                                                "with \"public\": true"))
    return errors
