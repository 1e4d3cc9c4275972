"""`ipv6firewallrules` (isolated router, dual stack): the guest /64's IPv6 firewall.

The payload is `firewallrules`' (the same rule model, keyed by id, `revoked: true`
deletes, the system egress rule carries `default_egress_policy`), with IPv6 CIDRs and
`guest_ip6_cidr` on every rule. IPv6 is routed, not NAT'ed, so an ingress rule opens the
guest network itself (subsystems/ipv6/rules.py): ingress is denied unless a rule allows it,
egress follows the default policy as for IPv4.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from ipaddress import IPv6Network

from vragent.model import RouterState
from vragent.subsystems.firewall import firewallrules
from vragent.fields import Fields, keyed_merge, parse_ipv6_network


@dataclass(frozen=True)
class GuestCidrClaim:
    """A rule's `guest_ip6_cidr`: it must be the router's guest network (checked after the merge)."""

    network: IPv6Network


@dataclass(frozen=True)
class Ipv6FirewallChange:
    rules: firewallrules.FirewallChange
    claims: tuple[tuple[GuestCidrClaim, str], ...]


def parse(fields: Fields) -> Ipv6FirewallChange | None:
    change = firewallrules.parse(fields, rule_of=functools.partial(firewallrules._rule, ipv6=True))
    if change is None:
        return None
    claims = []
    for index, raw in enumerate(fields.raw("rules", [])):
        if isinstance(raw, dict) and raw.get("guest_ip6_cidr"):
            path = f"{fields.at('rules')}[{index}].guest_ip6_cidr"
            network = parse_ipv6_network(str(raw["guest_ip6_cidr"]).strip(), path, fields.errors)
            if network is not None:
                claims.append((GuestCidrClaim(network), path))
    return Ipv6FirewallChange(change, tuple(claims))


def merge(state: RouterState, change: Ipv6FirewallChange) -> RouterState:
    rules = change.rules
    ordered = keyed_merge(state.ipv6_firewall_rules, lambda r: r.id, rules.upsert, rules.revoke,
                          order=lambda r: (int(r.id) if r.id.isdigit() else 1 << 62, r.id))
    default = state.ipv6_egress_default_allow if rules.egress_default_allow is None else rules.egress_default_allow
    return replace(state, ipv6_firewall_rules=ordered, ipv6_egress_default_allow=default)


def origins(change: Ipv6FirewallChange) -> list[tuple[object, str]]:
    return [*change.rules.upsert, *change.claims]
