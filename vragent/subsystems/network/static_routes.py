"""A VPC router's static routes (CloudStack `staticroutes`) as main-table routes (pure).

Each route of the state whose next hop is on a private gateway's network or a tier
(RouterState.static_route_device) becomes `<network> via <gateway> dev <nic> proto 77`
in the main table; one whose next hop is gone (its private gateway removed) is left out
until it is back. vragent owns exactly the main-table routes of protocol PROTOCOL
(netlink.policy_routing reads them): one no longer in the state is deleted, and every
other route of the main table (connected routes, the default route, an operator's) is
left alone. The protocol number is vragent's own, so `ip route` shows which routes came
from the management server (`proto 77`).
"""

from __future__ import annotations

from vragent.model import RouterState
from vragent.tables import MAIN_TABLE, STATIC_ROUTE_PROTOCOL
from vragent.values import Route

PROTOCOL = STATIC_ROUTE_PROTOCOL


def render(state: RouterState) -> frozenset[Route]:
    if not state.is_vpc:
        return frozenset()
    routes = set()
    for route in state.static_routes:
        device = state.static_route_device(route)
        if device is not None:
            routes.add(Route(MAIN_TABLE, route.network, route.gateway, device, protocol=PROTOCOL))
    return frozenset(routes)
