"""`staticroutes` (static_routes.json): a VPC router's static routes (cloudstack-vr-wave2.md 1.5).

The management server (SetStaticRouteConfigItem) sends `routes`, each `network` (a
subnet/len), `gateway` (the next hop), `ip_address` (the private gateway's IP the route
was created on; absent for a route created with a next hop only) and `revoke` (the
route's state is neither Active nor Add). Keyed by network, as the incumbent's bag:
`revoke: false` adds or replaces the route (a changed gateway is applied, which the
incumbent does not do), `revoke: true` removes it (vragent keeps no revoked entries).

Each route becomes `<network> via <gateway> dev <nic>` in the main table
(subsystems/network/static_routes.py); validated after the merge (check_state): a VPC router only,
the gateway on a private gateway's network or a tier (never the router's own address), the
network outside the VPC's CIDR and every network the router is on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Network

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
