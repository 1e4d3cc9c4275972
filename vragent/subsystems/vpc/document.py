"""A VPC router's sections of the state document (schema: schema/state.schema.json): its
private gateways, static routes and tier network ACLs.

Each is left out while empty, so other routers keep the document they always had.
"""

from __future__ import annotations

from vragent.errors import ValidationError
from vragent.fields import Fields, document_network as _network, parse_ipv4_network, ports_of, ports_text
from vragent.model import AclRule, NetworkAcl, PrivateGateway, RouterState, StaticRoute, device_index

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
    from vragent.fields import document_address as _address, document_network as _network

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
        mac, mtu = item.string("mac", None), item.integer("mtu", None, lo=68, hi=65535)
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


# -- network_acls ----------------------------------------------------------------------------

# A VPC router's tier ACLs; left out while empty (isolated routers keep their document).
NETWORK_ACLS = "network_acls"


def acl_rule_document(rule: AclRule) -> dict[str, Any]:
    return {"protocol": rule.protocol, "allowed": rule.allowed, "cidrs": [str(c) for c in rule.cidrs],
            "ports": ports_text(rule.ports), "icmp_type": rule.icmp_type, "icmp_code": rule.icmp_code}


def network_acls_document(state: RouterState) -> dict[str, Any]:
    if not state.network_acls:
        return {}
    return {NETWORK_ACLS: [{"device": acl.device, "ingress": [acl_rule_document(r) for r in acl.ingress],
                            "egress": [acl_rule_document(r) for r in acl.egress]}
                           for acl in state.network_acls]}


def acl_rule_trusted(r: dict) -> AclRule:
    return AclRule(r["protocol"], r["allowed"], tuple(_network(c) for c in r["cidrs"]), ports_of(r.get("ports")),
                   r.get("icmp_type"), r.get("icmp_code"))


def network_acls_trusted(data: dict) -> tuple[NetworkAcl, ...]:
    return tuple(NetworkAcl(a["device"], tuple(map(acl_rule_trusted, a.get("ingress", []))),
                            tuple(map(acl_rule_trusted, a.get("egress", []))))
                 for a in data.get(NETWORK_ACLS, []))


def network_acls_section(doc: Fields, errors: list[ValidationError]) -> tuple[NetworkAcl, ...]:
    """The native document's network_acls: [{device, ingress: [rule], egress: [rule]}]."""
    acls: dict[str, NetworkAcl] = {}
    for index, raw in enumerate(doc.list(NETWORK_ACLS, []) or []):
        item = Fields(raw, f"{doc.at(NETWORK_ACLS)}[{index}]", errors)
        device = item.device("device")
        lists = {}
        for key in ("ingress", "egress"):
            rules = []
            for r_index, raw_rule in enumerate(item.list(key, []) or []):
                rule = Fields(raw_rule, f"{item.at(key)}[{r_index}]", errors)
                protocol = rule.string("protocol")
                if protocol is not None and protocol not in ("tcp", "udp", "icmp", "all") and not (
                        protocol.isdigit() and int(protocol) <= 255):
                    rule.error("protocol", f"{protocol!r} is not tcp, udp, icmp, all or a number 0..255")
                    protocol = None
                allowed = rule.boolean("allowed")
                cidrs = rule.cidr_list("cidrs")
                ports = rule.port_range("ports", None)
                icmp_type = rule.integer("icmp_type", None, lo=0, hi=255)
                icmp_code = rule.integer("icmp_code", None, lo=0, hi=255)
                if not cidrs:
                    rule.error("cidrs", "needs at least one CIDR (0.0.0.0/0 for any)")
                elif protocol is not None and allowed is not None:
                    rules.append(AclRule(protocol, allowed, cidrs, ports, icmp_type, icmp_code))
            lists[key] = tuple(rules)
        if device is not None:
            if device in acls:
                item.error("device", f"{device} has an ACL already")
            acls[device] = NetworkAcl(device, lists["ingress"], lists["egress"])
    return tuple(acls[d] for d in sorted(acls))
