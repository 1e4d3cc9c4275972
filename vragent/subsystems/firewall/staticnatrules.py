"""`staticnatrules` (staticnat_rules.json): one-to-one NAT, one entry per public IP."""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address

from vragent.model import RouterState, StaticNat
from vragent.fields import Fields, keyed_merge


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
    key = lambda r: r.public_ip  # noqa: E731 - one entry per public IP
    return replace(state, static_nats=keyed_merge(state.static_nats, key, change.upsert, change.revoke, order=key))


def origins(change: StaticNatChange) -> list[tuple[object, str]]:
    return list(change.upsert)
