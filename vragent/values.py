"""Small values every layer shares: NIC names, directions, protocols, port ranges, and links,
policy rules and routes as the agent and netlink see them (pure)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

# CloudStack's NIC layout for an isolated-network router (cmdline type "router"); a
# shared network's DHCP server (type "dhcpsrvr") has the same eth0 and eth1 and no public NIC.
GUEST_DEVICE = "eth0"
CONTROL_DEVICE = "eth1"
PUBLIC_DEVICE = "eth2"
SSH_PORT = 3922


def device_index(device: str) -> int:
    """eth12 -> 12; CloudStack names NICs ethN after nic_dev_id."""
    digits = device[3:]
    return int(digits) if device.startswith("eth") and digits.isdigit() else 1 << 16


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


@dataclass(frozen=True)
class Link:
    name: str
    index: int
    mac: str
    mtu: int
    up: bool = True  # administratively up (IFF_UP); a redundant BACKUP keeps its public NIC down


@dataclass(frozen=True, order=True)
class Rule:
    """An IPv4 policy rule: `priority: from <source> | fwmark <mark> lookup <table>`."""

    priority: int
    table: int
    fwmark: int | None = None
    source: IPv4Network | None = None

    def __str__(self) -> str:
        mark = f" fwmark {self.fwmark:#x}" if self.fwmark is not None else ""
        return f"{self.priority}: from {self.source or 'all'}{mark} lookup {self.table}"


@dataclass(frozen=True, order=True)
class Route:
    """A route in a numbered table: `default via <gateway> dev <device>`, or a throw route
    (no gateway, no device: the lookup goes on with the next rule, i.e. main)."""

    table: int
    destination: IPv4Network
    gateway: IPv4Address | None = None
    device: str | None = None
    kind: str = "unicast"  # unicast | throw (anything else read back is only ever deleted)
    protocol: int | None = None  # set on main-table routes only: STATIC_ROUTE_PROTOCOL

    def __str__(self) -> str:
        dst = "default" if self.destination.prefixlen == 0 else str(self.destination)
        text = f"{dst}" if self.kind == "unicast" else f"{self.kind} {dst}"
        if self.gateway is not None:
            text += f" via {self.gateway}"
        if self.device is not None:
            text += f" dev {self.device}"
        if self.protocol is not None:
            text += f" proto {self.protocol}"
        return f"{text} table {self.table}"
