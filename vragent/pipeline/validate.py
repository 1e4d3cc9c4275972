"""Semantic checks on a merged `RouterState` (pure).

Each item of the state knows the JSON path it came from in this push (`origins`);
items already in the persisted state are named by their place in it.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from vragent.errors import ValidationError, origin_of
from vragent.model import Direction, GUEST_DEVICE, PortForward, RouterState, StaticNat
from vragent.subsystems.guestdata import verify as guestdata_verify
from vragent.subsystems.lb import verify as lb_verify
from vragent.subsystems.network import verify as network_verify


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
    layout = state.layout
    if control is not None:
        named.append((layout.control, control.network, f"state:cmdline.{layout.control}ip"))
    for pip in public:
        named.append((pip.device, pip.interface.network, where(pip, f"public_ips[{pip.ip}]")))
    for pgw in state.private_gateways:
        named.append((pgw.device, pgw.network, where(pgw, f"private_gateways[{pgw.ip}]")))
    for i, (dev_a, net_a, path_a) in enumerate(named):
        for dev_b, net_b, path_b in named[i + 1:]:
            if dev_a != dev_b and net_a.overlaps(net_b):
                errors.append(ValidationError(path_b, f"{net_b} on {dev_b} overlaps {net_a} on {dev_a} ({path_a})"))

    errors += network_verify.check_ip_aliases(state, where)
    if state.is_dhcp_server:
        errors += network_verify.check_dhcp_server(state)
        for net in guests:
            if net.gateway == net.router_ip:
                errors.append(ValidationError(where(net, f"guest_networks[{net.device}]"),
                                              f"the guests' gateway {net.gateway} is the router's own address: "
                                              "a dhcpsrvr router is not the guests' gateway "
                                              "(router_guest_gateway names the network's own router)"))

    # Each NIC has one role, which the router type decides (model.LAYOUTS).
    tiers = {n.device for n in guests}
    for pip in public:
        if pip.device == layout.control or (pip.device == GUEST_DEVICE and layout.guest == GUEST_DEVICE):
            role = "control" if pip.device == layout.control else "guest"
            errors.append(ValidationError(where(pip, f"public_ips[{pip.ip}]"),
                                          f"{pip.device} is the {role} NIC of a {state.router_type or 'router'}, "
                                          "not a public one"))
        elif pip.device in tiers:
            errors.append(ValidationError(where(pip, f"public_ips[{pip.ip}]"),
                                          f"{pip.device} is a guest network's NIC, not a public one"))
    public_devices = {p.device for p in public}
    for net in state.guest_networks:
        if net.device == layout.control:
            errors.append(ValidationError(where(net, f"guest_networks[{net.device}]"),
                                          f"{net.device} is the control NIC of a {state.router_type or 'router'}"))
        elif state.is_vpc and net.device in public_devices:
            errors.append(ValidationError(where(net, f"guest_networks[{net.device}]"),
                                          f"{net.device} is a public NIC of this VPC router, not a tier"))
    vpc_cidr = state.vpc_cidr
    if vpc_cidr is not None:
        for net in state.guest_networks:
            if not net.network.subnet_of(vpc_cidr):
                errors.append(ValidationError(where(net, f"guest_networks[{net.device}]"),
                                              f"the tier {net.network} is outside the VPC's CIDR {vpc_cidr}"))
    if state.is_vpc and state.firewall_rules:
        errors.append(ValidationError(where(state.firewall_rules[0], "firewall_rules[0]"),
                                      "a VPC router has no firewall rules: its tiers are guarded by networkacl"))

    # Integer bounds: membership tests run once per rule on routers with thousands of rules.
    guest_bounds = [(int(n.network.network_address), int(n.network.broadcast_address)) for n in guests]
    guest_bounds += [(int(a.network.network_address), int(a.network.broadcast_address)) for a in state.ip_aliases]

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

    router_addresses = set(state.own_guest_addresses())
    gateways = {s.gateway for s in state.guest_subnets() if s.gateway is not None} - router_addresses
    for host in state.dhcp_hosts:
        if not guest_bounds or not in_guest_network(host.ip):
            errors.append(ValidationError(where(host, f"dhcp_hosts[{host.ip}]"),
                                          f"{host.ip} is in no guest network of this router"))
        elif host.ip in router_addresses:
            errors.append(ValidationError(where(host, f"dhcp_hosts[{host.ip}]"),
                                          f"{host.ip} is the router's own guest address"))
        elif host.ip in gateways:
            errors.append(ValidationError(where(host, f"dhcp_hosts[{host.ip}]"),
                                          f"{host.ip} is the guests' gateway of its subnet"))

    for rule in state.firewall_rules:
        if rule.direction is Direction.INGRESS and rule.public_ip not in held:
            errors.append(ValidationError(where(rule, f"firewall_rules[{rule.id}]"),
                                          f"{rule.public_ip} is not a public IP of this router"))
    errors += lb_verify.check_load_balancing(state, origins)
    errors += guestdata_verify.check_vm_services(state, origins)

    from vragent.subsystems.vrrp import verify as vrrp_verify  # a redundant pair must agree on its VRID and VIPs

    errors += vrrp_verify.check_state(state, origins)
    if state.network_acls:
        from vragent.subsystems.vpc import verify as vpc_verify

        errors += vpc_verify.check_network_acls(state, origins)
    if state.private_gateways or state.static_routes:
        errors += network_verify.check_private_gateways(state, origins)
        errors += network_verify.check_static_routes(state, origins)
    if state.ipv6_firewall_rules or state.ipv6 is not None:
        from vragent.subsystems.ipv6 import verify as ipv6_verify

        errors += ipv6_verify.check_ipv6(state, origins)
    if state.remote_access_vpn is not None:
        from vragent.subsystems.vpn import verify as vpn_verify

        errors += vpn_verify.check_remote_access_vpn(state, origins)
    if state.site_to_site_vpns:
        from vragent.subsystems.vpn import verify as vpn_verify

        errors += vpn_verify.check_site_to_site_vpns(state, origins)
    return errors


def _check_public(rule: PortForward | StaticNat, held: dict, path: str, errors: list[ValidationError]) -> None:
    if rule.public_ip not in held:
        errors.append(ValidationError(path, f"{rule.public_ip} is not a public IP of this router"))
