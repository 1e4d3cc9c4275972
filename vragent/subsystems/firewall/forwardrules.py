"""`forwardrules` (forwarding_rules.json): port forwarding on a public IP.

Rules are matched for update or revoke on (public ip, public ports, protocol), as
in the incumbent. Ports arrive as "first:last" strings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vragent.model import PortForward, Protocol, RouterState
from vragent.fields import Fields, keyed_merge


@dataclass(frozen=True)
class ForwardChange:
    upsert: tuple[tuple[PortForward, str], ...]
    revoke: tuple[tuple, ...]  # keys


def parse(fields: Fields) -> ForwardChange | None:
    rules = fields.list("rules")
    if rules is None:
        return None
    upsert, revoke = [], []
    for index, raw in enumerate(rules):
        item = Fields(raw, f"{fields.at('rules')}[{index}]", fields.errors)
        revoked = item.boolean("revoke", False)
        protocol_name = (item.string("protocol") or "").lower()
        protocol = {"tcp": Protocol.TCP, "udp": Protocol.UDP}.get(protocol_name)
        if protocol_name and protocol is None:
            item.error("protocol", f"{protocol_name!r}: port forwarding needs tcp or udp")
        public_ip = item.ipv4("source_ip_address")
        public_ports = item.port_range("source_port_range")
        internal_ip = item.ipv4("destination_ip_address")
        internal_ports = item.port_range("destination_port_range")
        if None in (revoked, protocol, public_ip, public_ports, internal_ip, internal_ports):
            continue
        if public_ports.first == 0 or internal_ports.first == 0:
            item.error("source_port_range" if public_ports.first == 0 else "destination_port_range",
                       "port 0 cannot be forwarded")
            continue
        if public_ports.size != internal_ports.size:
            item.error("destination_port_range",
                       f"{internal_ports} has {internal_ports.size} ports but {public_ports} has {public_ports.size}")
            continue
        rule = PortForward(public_ip, protocol, public_ports, internal_ip, internal_ports)
        if revoked:
            revoke.append(rule.key)
        else:
            upsert.append((rule, item.path))
    return ForwardChange(tuple(upsert), tuple(revoke))


def merge(state: RouterState, change: ForwardChange) -> RouterState:
    return replace(state, port_forwards=keyed_merge(
        state.port_forwards, lambda r: r.key, change.upsert, change.revoke,
        order=lambda r: (int(r.public_ip), r.protocol.value, r.public_ports.first, r.public_ports.last)))


def origins(change: ForwardChange) -> list[tuple[object, str]]:
    return list(change.upsert)
