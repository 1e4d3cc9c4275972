"""Semantic checks on a merged `RouterState` (pure).

Each item of the state knows the JSON path it came from in this push (`origins`);
items already in the persisted state are named by their place in it.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from vragent.errors import ValidationError
from vragent.model import Direction, GUEST_DEVICE, PortForward, RouterState, StaticNat
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

    errors += check_ip_aliases(state, where)
    if state.is_dhcp_server:
        errors += _check_dhcp_server(state)
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
        if rule.direction is Direction.INGRESS and rule.public_ip is not None and rule.public_ip not in held:
            errors.append(ValidationError(where(rule, f"firewall_rules[{rule.id}]"),
                                          f"{rule.public_ip} is not a public IP of this router"))
    errors.extend(check_load_balancing(state, origins))
    errors.extend(check_vm_services(state, origins))

    from vragent import redundancy  # a redundant pair must agree on its VRID and VIPs

    errors += redundancy.check_state(state, origins)
    if state.network_acls:
        from vragent.wire import networkacl

        errors += networkacl.check_state(state, origins)
    if state.private_gateways or state.static_routes:
        from vragent.wire import ips, staticroutes

        errors += ips.check_private_gateways(state, origins)
        errors += staticroutes.check_state(state, origins)
    if state.ipv6_firewall_rules or state.ipv6 is not None:
        from vragent.wire import ipv6firewallrules

        errors += ipv6firewallrules.check_state(state, origins)
    if state.remote_access_vpn is not None:
        from vragent.wire import remoteaccessvpn

        errors += remoteaccessvpn.check_state(state, origins)
    if state.site_to_site_vpns:
        from vragent.wire import site2sitevpn

        errors += site2sitevpn.check_state(state, origins)
    from vragent import routed  # routed networks: no NAT services, routing firewall rules, BGP

    errors += routed.check_state(state, origins)
    return errors


def check_ip_aliases(state: RouterState, where) -> list[ValidationError]:
    """IP aliases serve a shared network's further subnets: each its own subnet, on a
    dhcpsrvr router's guest NIC, never one of the router's or a gateway's addresses."""
    if not state.ip_aliases:
        return []
    errors: list[ValidationError] = []
    guests = state.all_guest_networks()
    primary = next((n for n in guests if n.device == GUEST_DEVICE), None)
    gateways = {r.gateway for r in state.dhcp_ranges if r.gateway is not None}
    if primary is not None and state.is_dhcp_server:
        gateways.add(primary.gateway)
    seen: list[tuple[IPv4Network, str]] = [(n.network, f"the guest network on {n.device}") for n in guests]
    control = state.control_interface
    if control is not None:
        seen.append((control.network, f"the control network on {state.layout.control}"))
    for alias in state.ip_aliases:
        path = where(alias, f"ip_aliases[{alias.ip}]")
        if not state.is_dhcp_server:
            errors.append(ValidationError(path, "IP aliases serve the subnets of a shared network: only a "
                                                f"dhcpsrvr router takes them (this one is {state.router_type!r})"))
            continue
        if primary is None:
            errors.append(ValidationError(path, f"the router has no guest network on {GUEST_DEVICE} "
                                                "(cmdline eth0ip) to add an alias to"))
            continue
        if alias.ip in gateways:
            errors.append(ValidationError(path, f"{alias.ip} is a guest gateway, not an address of this router"))
        clash = next((name for network, name in seen if network.overlaps(alias.network)), None)
        if clash is not None:
            errors.append(ValidationError(path, f"{alias.network} is inside or overlaps {clash}: "
                                                "an alias serves a subnet of its own"))
        seen.append((alias.network, f"the subnet of alias {alias.ip}"))
    return errors


def _check_dhcp_server(state: RouterState) -> list[ValidationError]:
    """What a dhcpsrvr router must not hold (a native document, or a state that held it
    before the router's type changed): it has no public side and no NAT or firewall."""
    sections = [("public_ips", state.public_ips), ("firewall.rules", state.firewall_rules),
                ("port_forwards", state.port_forwards), ("static_nats", state.static_nats),
                ("ipv6_firewall.rules", state.ipv6_firewall_rules)]
    errors = [ValidationError(f"state:{name}", "a dhcpsrvr router is not the guests' gateway: it holds "
                                               "no public IPs, NAT or firewall rules")
              for name, items in sections if items]
    if state.load_balancing != LoadBalancing():
        errors.append(ValidationError("state:load_balancing", "a dhcpsrvr router does no load balancing"))
    return errors


def _check_public(rule: PortForward | StaticNat, held: dict, path: str, errors: list[ValidationError]) -> None:
    if rule.public_ip not in held:
        errors.append(ValidationError(path, f"{rule.public_ip} is not a public IP of this router"))


def check_vm_services(state: RouterState, origins: dict[int, tuple[object, str]]) -> list[ValidationError]:
    """Metadata and passwords are served to a VM of a guest network this router serves.

    Only what this push brought is checked: data persisted earlier whose network has gone
    since is simply not served (render/metadata.py), so it never blocks a later push."""
    subnets = [s.network for s in state.guest_subnets()]
    router_addresses = set(state.own_guest_addresses())
    errors: list[ValidationError] = []
    for item in (*state.vm_data, *state.password_offers):
        found = origins.get(id(item))
        if found is None or found[0] is not item:
            continue
        path = found[1] + (".vm_ip_address" if isinstance(item, VmData) else ".ip_address")
        if not any(item.ip in network for network in subnets):
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
