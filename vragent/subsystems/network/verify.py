"""The network subsystem's router-wide checks: IP aliases, a shared network's VR, private gateways, static routes (pure)."""

from __future__ import annotations

from ipaddress import IPv4Network

from vragent.errors import ValidationError
from vragent.model import GUEST_DEVICE, LoadBalancing, RouterState


def check_private_gateways(state: RouterState, origins: dict[int, tuple[object, str]]) -> list[ValidationError]:
    """A private gateway is a VPC router's, on a NIC of its own (not the control NIC, a public
    NIC or a tier), outside the VPC's CIDR, with its next hop on its network."""
    errors: list[ValidationError] = []
    tiers = {n.device for n in state.all_guest_networks()}
    public = set(state.public_devices())
    vpc_cidr = state.vpc_cidr
    for pgw in state.private_gateways:
        found = origins.get(id(pgw))
        path = found[1] if found is not None and found[0] is pgw else f"state:private_gateways[{pgw.ip}]"
        if not state.is_vpc:
            errors.append(ValidationError(f"{path}.is_private_gateway",
                                          "private gateways are for VPC routers (cmdline type vpcrouter)"))
            continue
        if pgw.device == state.layout.control or pgw.device in public or pgw.device in tiers:
            role = ("the control NIC" if pgw.device == state.layout.control
                    else "a public NIC" if pgw.device in public else "a tier's NIC")
            errors.append(ValidationError(f"{path}.nic_dev_id", f"{pgw.device} is {role}, not a private gateway's"))
        if vpc_cidr is not None and pgw.network.overlaps(vpc_cidr):
            errors.append(ValidationError(f"{path}.public_ip",
                                          f"the private gateway's network {pgw.network} overlaps the VPC's CIDR {vpc_cidr}"))
        if pgw.gateway == pgw.ip:
            errors.append(ValidationError(f"{path}.gateway", "the router as the private network's own gateway "
                                                             "is not supported yet"))
        elif pgw.gateway is not None and (pgw.gateway not in pgw.network or pgw.gateway in (
                pgw.network.network_address, pgw.network.broadcast_address)):
            errors.append(ValidationError(f"{path}.gateway", f"{pgw.gateway} is no other host of the private "
                                                             f"gateway's network {pgw.network}"))
    return errors


def check_static_routes(state: RouterState, origins: dict[int, tuple[object, str]]) -> list[ValidationError]:
    """Routes pushed now: on a VPC router, via a next hop it reaches, to a network it is not on.
    A route pushed earlier whose next hop went (its private gateway removed) stays in the state
    and is not rendered until the next hop is back (subsystems/network/static_routes.py)."""
    errors: list[ValidationError] = []
    own: list[tuple[IPv4Network, str]] = [(n.network, f"tier {n.device}") for n in state.all_guest_networks()]
    own += [(p.network, f"private gateway {p.device}") for p in state.private_gateways]
    own += [(p.interface.network, f"public NIC {p.device}") for p in state.ordered_public_ips()]
    if state.control_interface is not None:
        own.append((state.control_interface.network, "the control network"))
    vpc_cidr = state.vpc_cidr
    for route in state.static_routes:
        found = origins.get(id(route))
        if found is None or found[0] is not route:
            continue
        path = found[1]
        if not state.is_vpc:
            errors.append(ValidationError(f"{path}.network", "static routes are for VPC routers (cmdline type "
                                                             "vpcrouter)"))
            continue
        if vpc_cidr is not None and route.network.overlaps(vpc_cidr):
            errors.append(ValidationError(f"{path}.network", f"{route.network} overlaps the VPC's CIDR {vpc_cidr}"))
        else:
            for network, what in own:
                if route.network.overlaps(network):
                    errors.append(ValidationError(f"{path}.network", f"{route.network} overlaps {network} of {what}"))
                    break
        if state.static_route_device(route) is None:
            errors.append(ValidationError(f"{path}.gateway", f"{route.gateway} is no next hop on a private "
                                                             "gateway's network or a tier of this router"))
        if route.private_gateway is not None and not any(p.ip == route.private_gateway
                                                         for p in state.private_gateways):
            errors.append(ValidationError(f"{path}.ip_address", f"{route.private_gateway} is no private gateway "
                                                                "of this router"))
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


def check_dhcp_server(state: RouterState) -> list[ValidationError]:
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
