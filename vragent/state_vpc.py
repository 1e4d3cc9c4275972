"""The `private_gateways` and `static_routes` sections of the state document (schema:
schema/state.schema.json): a VPC router's private gateways and static routes.

Both are left out while empty, so other routers keep the document they always had.
"""

from __future__ import annotations

from vragent.errors import ValidationError
from vragent.model import PrivateGateway, StaticRoute, device_index
from vragent.wire.fields import Fields, parse_ipv4_network

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms a push)
if TYPE_CHECKING:
    from typing import Any

GATEWAYS, ROUTES = "private_gateways", "static_routes"


def to_document(gateways: tuple[PrivateGateway, ...], routes: tuple[StaticRoute, ...]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if gateways:
        doc[GATEWAYS] = [{"ip": str(p.ip), "prefix": p.prefix, "device": p.device,
                          "gateway": str(p.gateway) if p.gateway else None, "source_nat": p.source_nat,
                          "mac": p.mac, "mtu": p.mtu} for p in gateways]
    if routes:
        doc[ROUTES] = [{"network": str(r.network), "gateway": str(r.gateway),
                        "private_gateway": str(r.private_gateway) if r.private_gateway else None} for r in routes]
    return doc


def load_trusted(data: dict) -> tuple[tuple[PrivateGateway, ...], tuple[StaticRoute, ...]]:
    from vragent.state import _address, _network

    gateways = tuple(PrivateGateway(_address(p["ip"]), p["prefix"], p["device"],
                                    _address(p["gateway"]) if p.get("gateway") else None, p.get("source_nat", False),
                                    p.get("mac"), p.get("mtu")) for p in data.get(GATEWAYS, ()))
    routes = tuple(StaticRoute(_network(r["network"]), _address(r["gateway"]),
                               _address(r["private_gateway"]) if r.get("private_gateway") else None)
                   for r in data.get(ROUTES, ()))
    return gateways, routes


def from_document(doc: Fields, errors: list[ValidationError]
                  ) -> tuple[tuple[PrivateGateway, ...], tuple[StaticRoute, ...]]:
    """A native document's sections; the router-wide checks run after (validate.py)."""
    gateways: dict[str, PrivateGateway] = {}
    for index, raw in enumerate(doc.list(GATEWAYS, []) or []):
        item = Fields(raw, f"{doc.at(GATEWAYS)}[{index}]", errors)
        ip, device, prefix = item.ipv4("ip"), item.device("device"), item.integer("prefix", lo=0, hi=30)
        gateway = item.ipv4("gateway", None)
        source_nat = item.boolean("source_nat", False)
        mac, mtu = item.mac("mac", None) or None, item.integer("mtu", None, lo=68, hi=65535)
        if None in (ip, device, prefix, source_nat):
            continue
        if device in gateways:
            item.error("device", f"{device} has a private gateway already")
            continue
        gateways[device] = PrivateGateway(ip, prefix, device, gateway, source_nat, mac, mtu)
    routes: dict = {}
    for index, raw in enumerate(doc.list(ROUTES, []) or []):
        item = Fields(raw, f"{doc.at(ROUTES)}[{index}]", errors)
        text, gateway = item.string("network"), item.ipv4("gateway")
        private_gateway = item.ipv4("private_gateway", None)
        network = parse_ipv4_network(text, item.at("network"), errors) if text is not None else None
        if network is None or gateway is None:
            continue
        if network in routes:
            item.error("network", f"{network} is listed twice")
            continue
        routes[network] = StaticRoute(network, gateway, private_gateway)
    return (tuple(gateways[d] for d in sorted(gateways, key=device_index)),
            tuple(sorted(routes.values())))
