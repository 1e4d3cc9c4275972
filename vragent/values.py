"""Small values every layer shares: directions, protocols, port ranges (pure)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

# CloudStack's NIC layout for an isolated-network router (cmdline type "router"); a
# shared network's DHCP server (type "dhcpsrvr") has the same eth0 and eth1 and no public NIC.
GUEST_DEVICE = "eth0"
CONTROL_DEVICE = "eth1"
PUBLIC_DEVICE = "eth2"
SSH_PORT = 3922


class Direction(enum.Enum):
    INGRESS = "ingress"
    EGRESS = "egress"


class Protocol(enum.Enum):
    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"
    ALL = "all"

    @property
    def has_ports(self) -> bool:
        return self in (Protocol.TCP, Protocol.UDP)


@dataclass(frozen=True, order=True)
class PortRange:
    first: int
    last: int

    def __post_init__(self) -> None:
        if not (0 <= self.first <= self.last <= 65535):
            raise ValueError(f"bad port range {self.first}:{self.last}")

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def match(self) -> str:
        """The form iptables-save prints after --dport."""
        return str(self.first) if self.first == self.last else f"{self.first}:{self.last}"

    def __str__(self) -> str:
        return f"{self.first}:{self.last}"
