"""Semantic checks on a merged `RouterState` (pure).

Each item of the state knows the JSON path it came from in this push (`origins`);
items already in the persisted state are named by their place in it.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from vragent.errors import ValidationError
from vragent.model import (CONTROL_DEVICE, Direction, FirewallRule, GUEST_DEVICE, PortForward,
                           RouterState, StaticNat)


def check_state(state: RouterState, origins: dict[object, str] | None = None) -> list[ValidationError]:
    origins = origins or {}
    errors: list[ValidationError] = []

    def where(item: object, fallback: str) -> str:
        return origins.get(item, f"state:{fallback}")

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

    def in_guest_network(address) -> bool:
        return not guests or any(address in n.network for n in guests)

    forwarded: dict[object, str] = {}  # public ip -> path of a rule forwarding from it
    by_socket: dict[tuple, list[tuple[PortForward, str]]] = {}
    for index, rule in enumerate(state.port_forwards):
        path = where(rule, f"port_forwards[{index}]")
        _check_public(rule, held, path, errors)
        if not in_guest_network(rule.internal_ip):
            errors.append(ValidationError(path, f"{rule.internal_ip} is in no guest network of this router"))
        by_socket.setdefault((rule.public_ip, rule.protocol), []).append((rule, path))
        forwarded.setdefault(rule.public_ip, path)
    for (ip, protocol), rules in by_socket.items():
        rules.sort(key=lambda pair: pair[0].public_ports)
        for (before, before_path), (after, after_path) in zip(rules, rules[1:]):
            if after.public_ports.first <= before.public_ports.last:
                errors.append(ValidationError(after_path, f"{ip} {protocol.value} ports {after.public_ports} "
                                                          f"are already claimed by {before_path}"))

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
            errors.append(ValidationError(path, f"{nat.public_ip} has port forwarding ({forwarded[nat.public_ip]}); "
                                                "static NAT would take all of its ports"))

    router_addresses = {n.router_ip for n in guests} | {n.gateway for n in guests}
    for index, host in enumerate(state.dhcp_hosts):
        path = where(host, f"dhcp_hosts[{host.ip}]")
        if not any(host.ip in n.network for n in guests):
            errors.append(ValidationError(path, f"{host.ip} is in no guest network of this router"))
        elif host.ip in router_addresses:
            errors.append(ValidationError(path, f"{host.ip} is the router's own guest address"))

    for index, rule in enumerate(state.firewall_rules):
        if rule.direction is Direction.INGRESS and rule.public_ip not in held:
            errors.append(ValidationError(where(rule, f"firewall_rules[{rule.id}]"),
                                          f"{rule.public_ip} is not a public IP of this router"))

    from vragent import redundancy  # a redundant pair must agree on its VRID and VIPs

    errors += redundancy.check_state(state, origins)
    return errors


def _check_public(rule: PortForward | StaticNat, held: dict, path: str, errors: list[ValidationError]) -> None:
    if rule.public_ip not in held:
        errors.append(ValidationError(path, f"{rule.public_ip} is not a public IP of this router"))
