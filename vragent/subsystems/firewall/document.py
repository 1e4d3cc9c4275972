"""Firewall rules as the state document holds them (shared with the IPv6 firewall section)."""

from __future__ import annotations

from vragent.model import Direction, FirewallRule, Protocol
from vragent.fields import Fields



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
