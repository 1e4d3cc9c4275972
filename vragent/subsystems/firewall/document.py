"""Firewall rules as the state document holds them (shared with the IPv6 firewall section)."""

from __future__ import annotations

from vragent.model import Direction, FirewallRule, PortForward, Protocol
from vragent.fields import Fields, parse_ipv4_network



from vragent.fields import parse_ipv6_network


def firewall_rule(item: Fields, ipv6: bool = False) -> FirewallRule | None:
    """One rule of `firewall` or (`ipv6`: no public IP, IPv6 CIDRs) of `ipv6_firewall`."""
    rule_id = item.string("id")
    direction = item.enum("direction", Direction)
    protocol = item.enum("protocol", Protocol)
    public_ip = None
    if ipv6:
        if item.has("public_ip"):
            item.error("public_ip", "IPv6 rules open the guest network itself; they have no public IP")
    else:
        public_ip = item.ipv4("public_ip", None)
    ports = item.port_range("ports", None)
    icmp_type = item.integer("icmp_type", None, lo=0, hi=255)
    icmp_code = item.integer("icmp_code", None, lo=0, hi=255)
    parse = parse_ipv6_network if ipv6 else None
    sources, destinations = item.cidr_list("source_cidrs", parse), item.cidr_list("dest_cidrs", parse)
    if None in (rule_id, direction, protocol):
        return None
    if direction is Direction.INGRESS and public_ip is None and not ipv6:
        item.error("public_ip", "is required for an ingress rule")
        return None
    return FirewallRule(rule_id, direction, protocol, public_ip, ports, icmp_type, icmp_code, sources, destinations)


def forward_sources_document(rule: PortForward) -> dict:
    """A port forward's `sources` (a VPC rule's CIDRs) in the document; absent: any source."""
    return {} if rule.sources is None else {"sources": [str(c) for c in rule.sources]}


def forward_sources(item: Fields) -> tuple | None:
    """A port forward's `sources`, kept as listed; absent: any source."""
    if not item.has("sources"):
        return None
    raw = item.list("sources", [])
    networks = [parse_ipv4_network(c, f"{item.at('sources')}[{i}]", item.errors) if isinstance(c, str) else None
                for i, c in enumerate(raw or [])]
    if None in networks:
        item.error("sources", "expected a list of IPv4 CIDRs")
        return None
    return tuple(networks)
