"""Firewall rules, port forwards and static NAT (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from vragent.values import Direction, PortRange, Protocol

@dataclass(frozen=True)
class FirewallRule:
    """One CloudStack firewall rule (isolated router), ingress or egress."""

    id: str
    direction: Direction
    protocol: Protocol
    public_ip: IPv4Address | None = None  # ingress only
    ports: PortRange | None = None
    icmp_type: int | None = None  # None: any type
    icmp_code: int | None = None  # None: any code
    source_cidrs: tuple[IPv4Network, ...] = ()
    dest_cidrs: tuple[IPv4Network, ...] = ()


@dataclass(frozen=True)
class PortForward:
    public_ip: IPv4Address
    protocol: Protocol
    public_ports: PortRange
    internal_ip: IPv4Address
    internal_ports: PortRange

    @property
    def key(self) -> tuple:
        # The incumbent matches updates and revokes on (public ip, ports, protocol). Plain
        # ints and strings: hashing ipaddress, dataclass and enum values runs Python code,
        # thousands of times per push.
        return (int(self.public_ip), self.public_ports.first, self.public_ports.last, self.protocol.value)


@dataclass(frozen=True)
class StaticNat:
    public_ip: IPv4Address
    internal_ip: IPv4Address
