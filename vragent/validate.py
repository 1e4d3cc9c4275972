"""Semantic checks on a merged `RouterState` (pure).

Each item of the state knows the JSON path it came from in this push (`origins`);
items already in the persisted state are named by their place in it.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from vragent.errors import ValidationError
from vragent.model import (CONTROL_DEVICE, Direction, FirewallRule, GUEST_DEVICE, PortForward,
                           RouterState, StaticNat)
from vragent.model import LoadBalancing, Protocol, VmData


def check_state(state: RouterState, origins: dict[int, tuple[object, str]] | None = None) -> list[ValidationError]:
    origins = origins or {}
    errors: list[ValidationError] = []

    def where(item: object, fallback: str) -> str:
        return origin_of(origins, item, f"state:{fallback}")

    public = state.ordered_public_ips()
    held = {p.ip: p for p in public}
    guests = state.all_guest_networks()
    control = state.control_interface

    # Networks on different NICs must not overlap: packets would leave by the wrong NIC.
    named: list[tuple[str, IPv4Network, str]] = []
    for net in guests:
        named.append((net.device, net.network, where(net, f"guest_networks[{net.device}]")))
    if control is not None:
        named.append((CONTROL_DEVICE, control.network, "state:cmdline.eth1ip"))
    for pip in public:
        named.append((pip.device, pip.interface.network, where(pip, f"public_ips[{pip.ip}]")))
    for i, (dev_a, net_a, path_a) in enumerate(named):
        for dev_b, net_b, path_b in named[i + 1:]:
            if dev_a != dev_b and net_a.overlaps(net_b):
                errors.append(ValidationError(path_b, f"{net_b} on {dev_b} overlaps {net_a} on {dev_a} ({path_a})"))

    for pip in public:
        if pip.device in (GUEST_DEVICE, CONTROL_DEVICE) and state.router_type == "router":
            errors.append(ValidationError(where(pip, f"public_ips[{pip.ip}]"),
                                          f"{pip.device} is not a public NIC of a router"))

    # Integer bounds: membership tests run once per rule on routers with thousands of rules.
    guest_bounds = [(int(n.network.network_address), int(n.network.broadcast_address)) for n in guests]

    def in_guest_network(address) -> bool:
        value = int(address)
        return not guest_bounds or any(low <= value <= high for low, high in guest_bounds)

    forwarded: dict[object, int] = {}  # public ip -> index of a rule forwarding from it
    by_socket: dict[tuple, list[tuple[PortForward, int]]] = {}
    forwards = state.port_forwards

    def forward_path(index: int) -> str:
        return where(forwards[index], f"port_forwards[{index}]")

    for index, rule in enumerate(forwards):
        if rule.public_ip not in held:
            errors.append(ValidationError(forward_path(index), f"{rule.public_ip} is not a public IP of this router"))
        if not in_guest_network(rule.internal_ip):
            errors.append(ValidationError(forward_path(index),
                                          f"{rule.internal_ip} is in no guest network of this router"))
        by_socket.setdefault((rule.public_ip, rule.protocol), []).append((rule, index))
        forwarded.setdefault(rule.public_ip, index)
    for (ip, protocol), rules in by_socket.items():
        rules.sort(key=lambda pair: (pair[0].public_ports.first, pair[0].public_ports.last))
        for (before, before_index), (after, after_index) in zip(rules, rules[1:]):
            if after.public_ports.first <= before.public_ports.last:
                errors.append(ValidationError(forward_path(after_index),
                                              f"{ip} {protocol.value} ports {after.public_ports} "
                                              f"are already claimed by {forward_path(before_index)}"))

    seen_internal: dict[object, str] = {}
    for index, nat in enumerate(state.static_nats):
        path = where(nat, f"static_nats[{index}]")
        _check_public(nat, held, path, errors)
        pip = held.get(nat.public_ip)
        if pip is not None and pip.source_nat:
            errors.append(ValidationError(path, f"{nat.public_ip} is the source-NAT IP; it cannot be static NAT"))
        if not in_guest_network(nat.internal_ip):
            errors.append(ValidationError(path, f"{nat.internal_ip} is in no guest network of this router"))
        if nat.internal_ip in seen_internal:
            errors.append(ValidationError(path, f"{nat.internal_ip} already has static NAT ({seen_internal[nat.internal_ip]})"))
        seen_internal[nat.internal_ip] = path
        if nat.public_ip in forwarded:
            errors.append(ValidationError(path, f"{nat.public_ip} has port forwarding "
                                                f"({forward_path(forwarded[nat.public_ip])}); "
                                                "static NAT would take all of its ports"))

    router_addresses = {n.router_ip for n in guests} | {n.gateway for n in guests}
    for host in state.dhcp_hosts:
        if not guest_bounds or not in_guest_network(host.ip):
            errors.append(ValidationError(where(host, f"dhcp_hosts[{host.ip}]"),
                                          f"{host.ip} is in no guest network of this router"))
        elif host.ip in router_addresses:
            errors.append(ValidationError(where(host, f"dhcp_hosts[{host.ip}]"),
                                          f"{host.ip} is the router's own guest address"))

    for rule in state.firewall_rules:
        if rule.direction is Direction.INGRESS and rule.public_ip not in held:
            errors.append(ValidationError(where(rule, f"firewall_rules[{rule.id}]"),
                                          f"{rule.public_ip} is not a public IP of this router"))
    errors.extend(check_load_balancing(state, origins))
    errors.extend(check_vm_services(state, origins))

    from vragent import redundancy  # a redundant pair must agree on its VRID and VIPs

    errors += redundancy.check_state(state, origins)
    if state.ipv6_firewall_rules or state.ipv6 is not None:
        from vragent.wire import ipv6firewallrules

        errors += ipv6firewallrules.check_state(state, origins)
    if state.remote_access_vpn is not None:
        from vragent.wire import remoteaccessvpn

        errors += remoteaccessvpn.check_state(state, origins)
    return errors


def _check_public(rule: PortForward | StaticNat, held: dict, path: str, errors: list[ValidationError]) -> None:
    if rule.public_ip not in held:
        errors.append(ValidationError(path, f"{rule.public_ip} is not a public IP of this router"))


def check_vm_services(state: RouterState, origins: dict[int, tuple[object, str]]) -> list[ValidationError]:
    """Metadata and passwords are served to a VM of a guest network this router serves.

    Only what this push brought is checked: data persisted earlier whose network has gone
    since is simply not served (render/metadata.py), so it never blocks a later push."""
    guests = state.all_guest_networks()
    router_addresses = {n.router_ip for n in guests} | {n.gateway for n in guests}
    errors: list[ValidationError] = []
    for item in (*state.vm_data, *state.password_offers):
        found = origins.get(id(item))
        if found is None or found[0] is not item:
            continue
        path = found[1] + (".vm_ip_address" if isinstance(item, VmData) else ".ip_address")
        if not any(item.ip in n.network for n in guests):
            errors.append(ValidationError(path, f"{item.ip} is in no guest network of this router"))
        elif item.ip in router_addresses:
            errors.append(ValidationError(path, f"{item.ip} is the router's own guest address"))
    return errors


# -- load balancing --------------------------------------------------------------------

def origin_of(origins: dict[int, tuple[object, str]], item: object, fallback: str) -> str:
    """The JSON path an item of the state came from in this push, else `fallback`."""
    found = origins.get(id(item))
    return found[1] if found is not None and found[0] is item else fallback


def check_load_balancing(state: RouterState, origins: dict[int, tuple[object, str]]) -> list[ValidationError]:
    """Listeners on addresses the router holds, no clash with NAT, backends in guest networks,
    and a stats page on a public IP only when the document says so."""
    lb = state.load_balancing
    if lb == LoadBalancing():
        return []
    errors: list[ValidationError] = []
    public = {p.ip for p in state.ordered_public_ips()}
    local = set(public) | {n.router_ip for n in state.all_guest_networks()}
    local |= {n.gateway for n in state.all_guest_networks()}
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
