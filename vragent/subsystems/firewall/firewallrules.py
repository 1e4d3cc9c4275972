"""`firewallrules` (firewall_rules.json): isolated-router ingress and egress rules.

Keyed by rule id; `revoked: true` deletes. Ingress rules admit traffic to one public
IP. Egress rules carry the network's default policy (`default_egress_policy`: true
means allow): with a default allow they deny, with a default deny they allow. The
management server's system egress rule (protocol all, no CIDRs, no ports) only
carries that policy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vragent.model import Direction, FirewallRule, Protocol, RouterState
from vragent.fields import Fields, keyed_merge, parse_ipv6_network


@dataclass(frozen=True)
class FirewallChange:
    upsert: tuple[tuple[FirewallRule, str], ...]
    revoke: tuple[str, ...]
    egress_default_allow: bool | None


def parse(fields: Fields, rule_of=None) -> FirewallChange | None:
    """`rule_of(item, id, direction)`: how one rule is read (ipv6firewallrules has its own)."""
    rule_of = rule_of or _rule
    rules = fields.list("rules")
    if rules is None:
        return None
    upsert, revoke = [], []
    egress_default: bool | None = None
    seen_ids: dict[str, str] = {}
    for index, raw in enumerate(rules):
        item = Fields(raw, f"{fields.at('rules')}[{index}]", fields.errors)
        rule_id = item.string("id")
        revoked = item.boolean("revoked", False)
        direction = _direction(item)
        if rule_id is None or revoked is None or direction is None:
            continue
        if rule_id in seen_ids:
            item.error("id", f"rule id {rule_id} also appears at {seen_ids[rule_id]}")
            continue
        seen_ids[rule_id] = item.path
        if direction is Direction.EGRESS:
            policy = item.boolean("default_egress_policy", None)
            if policy is not None:
                egress_default = policy
        if revoked:
            revoke.append(rule_id)
            continue
        rule = rule_of(item, rule_id, direction)
        if rule is None:
            continue
        if _is_system_egress_rule(rule):
            continue
        upsert.append((rule, item.path))
    return FirewallChange(tuple(upsert), tuple(revoke), egress_default)


def _direction(item: Fields) -> Direction | None:
    value = (item.string("traffic_type", "Ingress") or "").lower()
    try:
        return Direction(value)
    except ValueError:
        item.error("traffic_type", f"{value!r} is neither Ingress nor Egress")
        return None


# ipv6firewallrules may name ICMPv6 by its own names; the rule's type and code are ICMPv6's then.
_ICMPV6_ALIASES = ("icmpv6", "ipv6-icmp")


def _protocol(item: Fields, ipv6: bool = False) -> Protocol | None:
    value = (item.string("protocol") or "").lower()
    if ipv6 and value in _ICMPV6_ALIASES:
        return Protocol.ICMP
    try:
        return Protocol(value)
    except ValueError:
        if value:
            item.error("protocol", f"{value!r} is not one of tcp, udp, {'icmp (icmpv6)' if ipv6 else 'icmp'}, all")
        return None


def _rule(item: Fields, rule_id: str, direction: Direction, ipv6: bool = False) -> FirewallRule | None:
    """One rule. IPv4: an ingress rule opens one public IP (`src_ip`). IPv6 (no NAT): it
    opens the guest network itself, its CIDRs are IPv6 and `icmp` means ICMPv6."""
    protocol = _protocol(item, ipv6)
    public_ip = item.ipv4("src_ip") if direction is Direction.INGRESS and not ipv6 else None
    ports = item.port_range("src_port_range", None) if protocol and protocol.has_ports else None
    icmp_type = icmp_code = None
    if protocol is Protocol.ICMP:
        icmp_type = item.integer("icmp_type", -1, lo=-1, hi=255)
        icmp_code = item.integer("icmp_code", -1, lo=-1, hi=255)
        if icmp_type == -1:
            icmp_type = icmp_code = None  # -1 is CloudStack's "any"
        elif icmp_code == -1:
            icmp_code = None
    parse = parse_ipv6_network if ipv6 else None
    sources = item.cidr_list("source_cidr_list", parse)
    destinations = item.cidr_list("dest_cidr_list", parse)
    if protocol is None or (direction is Direction.INGRESS and public_ip is None and not ipv6):
        return None
    if ports is not None and ports.first == 0:
        item.error("src_port_range", f"{ports}: port 0 is not a valid port")
        return None
    return FirewallRule(id=rule_id, direction=direction, protocol=protocol, public_ip=public_ip,
                        ports=ports, icmp_type=icmp_type, icmp_code=icmp_code,
                        source_cidrs=sources, dest_cidrs=destinations)


def _is_system_egress_rule(rule: FirewallRule) -> bool:
    return (rule.direction is Direction.EGRESS and rule.protocol is Protocol.ALL
            and not rule.source_cidrs and not rule.dest_cidrs and rule.ports is None)


def merge(state: RouterState, change: FirewallChange) -> RouterState:
    ordered = keyed_merge(state.firewall_rules, lambda r: r.id, change.upsert, change.revoke,
                          order=lambda r: (int(r.id) if r.id.isdigit() else 1 << 62, r.id))
    default = state.egress_default_allow if change.egress_default_allow is None else change.egress_default_allow
    return replace(state, firewall_rules=ordered, egress_default_allow=default)


def origins(change: FirewallChange) -> list[tuple[object, str]]:
    return list(change.upsert)
