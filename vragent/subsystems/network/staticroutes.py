"""`staticroutes` (static_routes.json): a VPC router's static routes (cloudstack-vr-wave2.md 1.5).

The management server (SetStaticRouteConfigItem) sends `routes`, each `network` (a
subnet/len), `gateway` (the next hop), `ip_address` (the private gateway's IP the route
was created on; absent for a route created with a next hop only) and `revoke` (the
route's state is neither Active nor Add). Keyed by network, as the incumbent's bag:
`revoke: false` adds or replaces the route (a changed gateway is applied, which the
incumbent does not do), `revoke: true` removes it (vragent keeps no revoked entries).

Each route becomes `<network> via <gateway> dev <nic>` in the main table
(render/static_routes.py); validated after the merge (check_state): a VPC router only,
the gateway on a private gateway's network or a tier (never the router's own address), the
network outside the VPC's CIDR and every network the router is on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Network

from vragent.errors import ValidationError
from vragent.model import RouterState, StaticRoute
from vragent.fields import Fields, parse_ipv4_network


@dataclass(frozen=True)
class StaticRoutesChange:
    add: tuple[tuple[StaticRoute, str], ...]  # (route, json path)
    revoke: tuple[tuple[IPv4Network, str], ...]


def parse(fields: Fields) -> StaticRoutesChange | None:
    entries = fields.list("routes")
    if entries is None:
        return None
    add: dict[IPv4Network, tuple[StaticRoute, str]] = {}
    revoke: dict[IPv4Network, str] = {}
    for index, entry in enumerate(entries):
        item = Fields(entry, f"{fields.at('routes')}[{index}]", fields.errors)
        text = item.string("network")
        revoked = item.boolean("revoke", False)
        gateway = item.ipv4("gateway", None) if revoked else item.ipv4("gateway")
        private_gateway = item.ipv4("ip_address", None)
        network = parse_ipv4_network(text, item.at("network"), item.errors) if text is not None else None
        if network is None or revoked is None:
            continue
        if network in add or network in revoke:
            item.error("network", f"{network} is listed twice in this push")
            continue
        if revoked:
            revoke[network] = item.path
            continue
        if gateway is None:
            continue
        if network.prefixlen == 0:
            item.error("network", "a static route cannot be the default route")
            continue
        add[network] = (StaticRoute(network, gateway, private_gateway), item.path)
    return StaticRoutesChange(tuple(add.values()), tuple(revoke.items()))


def merge(state: RouterState, change: StaticRoutesChange) -> RouterState:
    routes = {r.network: r for r in state.static_routes}
    for network, _ in change.revoke:
        routes.pop(network, None)
    for route, _ in change.add:
        routes[route.network] = route
    return replace(state, static_routes=tuple(sorted(routes.values())))


def origins(change: StaticRoutesChange) -> list[tuple[object, str]]:
    return list(change.add)


def check_state(state: RouterState, origins: dict[int, tuple[object, str]]) -> list[ValidationError]:
    """Routes pushed now: on a VPC router, via a next hop it reaches, to a network it is not on.
    A route pushed earlier whose next hop went (its private gateway removed) stays in the state
    and is not rendered until the next hop is back (render/static_routes.py)."""
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
