"""`staticnatrules` (staticnat_rules.json): one-to-one NAT, one entry per public IP."""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address

from vragent.model import RouterState, StaticNat
from vragent.wire.fields import Fields

TYPES = ("staticnatrules",)


@dataclass(frozen=True)
class StaticNatChange:
    upsert: tuple[tuple[StaticNat, str], ...]
    revoke: tuple[IPv4Address, ...]


def parse(fields: Fields) -> StaticNatChange | None:
    rules = fields.list("rules")
    if rules is None:
        return None
    upsert, revoke = [], []
    for index, raw in enumerate(rules):
        item = Fields(raw, f"{fields.at('rules')}[{index}]", fields.errors)
        revoked = item.boolean("revoke", False)
        public_ip = item.ipv4("source_ip_address")
        internal_ip = item.ipv4("destination_ip_address")
        if None in (revoked, public_ip, internal_ip):
            continue
        if revoked:
            revoke.append(public_ip)
        else:
            upsert.append((StaticNat(public_ip, internal_ip), item.path))
    return StaticNatChange(tuple(upsert), tuple(revoke))


def merge(state: RouterState, change: StaticNatChange) -> RouterState:
    rules = {r.public_ip: r for r in state.static_nats}
    for ip in change.revoke:
        rules.pop(ip, None)
    for rule, _ in change.upsert:
        rules[rule.public_ip] = rule
    return replace(state, static_nats=tuple(rules[ip] for ip in sorted(rules)))


def origins(change: StaticNatChange) -> list[tuple[object, str]]:
    return list(change.upsert)
