"""`networkacl` (network_acl.json): the whole ACL of one VPC tier, replaced by each push.

The management server (SetNetworkACLCommand) sends the tier's NIC as `device`, and its
ACL items, sorted by their `number`, split into `ingress_rules` and `egress_rules`:

- `type`: tcp | udp | icmp | all, or `protocol` with a number in `protocol` (0..255);
- tcp/udp: `first_port`/`last_port`; both 0 (the API's "no ports") is every port;
- icmp: `icmp_type`/`icmp_code`, -1 for any;
- `cidr`: the item's CIDRs joined with ","; an empty list is sent as "0.0.0.0/0,::/0".
  IPv6 CIDRs are left out (IPv4 only here); an item with no IPv4 CIDR is skipped, as the
  incumbent skips it;
- `allowed`: ACCEPT, else DROP.

A revoked item is never sent: absent means removed, so the tier's ACL is exactly the push.
A private gateway's ACL (`private_gateway_acl: true`) is the same push for the private
gateway's NIC: its ingress rules guard traffic from the VPC out to the private network
(matched on the source), its egress rules new traffic coming in from it (matched on the
destination), the incumbent's directions (subsystems/vpc/rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Network

from vragent.errors import ValidationError
from vragent.model import AclRule, NetworkAcl, PortRange, RouterState
from vragent.fields import Fields, parse_ipv4_network, parse_ipv6_network, type_name

_NAMED = ("tcp", "udp", "icmp", "all")


@dataclass(frozen=True)
class NetworkAclChange:
    acl: NetworkAcl
    path: str


def parse(fields: Fields) -> NetworkAclChange | None:
    device = fields.device("device")
    # Validated, then not needed: the NIC (a tier's or a private gateway's) says which it is.
    flag_ok = fields.boolean("private_gateway_acl", False) is not None
    lists = {}
    for key in ("ingress_rules", "egress_rules"):
        rules = []
        for index, raw in enumerate(fields.list(key, []) or []):
            rule = _rule(Fields(raw, f"{fields.at(key)}[{index}]", fields.errors))
            if rule is not None:
                rules.append(rule)
        lists[key] = tuple(rules)
    if device is None or not flag_ok:
        return None
    return NetworkAclChange(NetworkAcl(device, lists["ingress_rules"], lists["egress_rules"]), fields.path)


def _rule(item: Fields) -> AclRule | None:
    kind = item.string("type")
    allowed = item.boolean("allowed")
    cidrs = _cidrs(item)
    if kind is None:
        return None
    kind = kind.lower()
    ports = icmp_type = icmp_code = None
    if kind == "protocol":
        number = item.integer("protocol", lo=0, hi=255)
        if number is None:
            return None
        protocol = str(number)
    elif kind in _NAMED:
        protocol = kind
    else:
        item.error("type", f"{kind!r} is not one of {', '.join(_NAMED)}, protocol")
        return None
    if kind in ("tcp", "udp"):
        first, last = item.integer("first_port", 0, lo=0, hi=65535), item.integer("last_port", 0, lo=0, hi=65535)
        if first is None or last is None:
            return None
        if first > last:
            item.error("last_port", f"{last} is below first_port {first}")
            return None
        if (first, last) != (0, 0):
            ports = PortRange(first, last)
    elif kind == "icmp":
        icmp_type = item.integer("icmp_type", -1, lo=-1, hi=255)
        icmp_code = item.integer("icmp_code", -1, lo=-1, hi=255)
        if icmp_type is None or icmp_code is None:
            return None
        if icmp_type == -1 and icmp_code != -1:
            item.error("icmp_code", f"{icmp_code} needs an icmp_type (the type is -1, any)")
            return None
        icmp_type = None if icmp_type == -1 else icmp_type
        icmp_code = None if icmp_code == -1 else icmp_code
    if allowed is None or cidrs is None:
        return None
    if not cidrs:
        return None  # IPv6 CIDRs only: nothing for IPv4 (the incumbent skips it too)
    return AclRule(protocol, allowed, cidrs, ports, icmp_type, icmp_code)


def _cidrs(item: Fields) -> tuple[IPv4Network, ...] | None:
    """The IPv4 CIDRs of `cidr` ("a,b,..."), in order; None when one is malformed."""
    value = item.raw("cidr", "0.0.0.0/0,::/0")
    if isinstance(value, list):
        parts = value
    elif isinstance(value, str):
        parts = value.split(",")
    else:
        item.error("cidr", f"expected comma-separated CIDRs, got {type_name(value)}")
        return None
    if not any(isinstance(part, str) and part.strip() for part in parts):
        parts = ["0.0.0.0/0"]  # no CIDR at all: the API's default, any source or destination
    found: list[IPv4Network] = []
    bad = False
    for index, part in enumerate(parts):
        path = f"{item.at('cidr')}[{index}]"
        if not isinstance(part, str):
            item.errors.append(ValidationError(path, f"expected a CIDR string, got {type_name(part)}"))
            bad = True
            continue
        text = part.strip()
        if not text:
            continue
        if ":" in text:
            if parse_ipv6_network(text, path, item.errors) is None:
                bad = True
            continue
        network = parse_ipv4_network(text, path, item.errors)
        if network is None:
            bad = True
        elif network not in found:
            found.append(network)
    return None if bad else tuple(found)


def merge(state: RouterState, change: NetworkAclChange) -> RouterState:
    acls = {acl.device: acl for acl in state.network_acls}
    acls[change.acl.device] = change.acl
    return replace(state, network_acls=tuple(acls[d] for d in sorted(acls)))


def origins(change: NetworkAclChange) -> list[tuple[object, str]]:
    return [(change.acl, change.path)]
