"""A VPC's network ACLs (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network

from vragent.values import PortRange

@dataclass(frozen=True)
class AclRule:
    """One item of a VPC tier's network ACL (CloudStack `networkacl`), in the order pushed
    (the management server sorts by the item's `number`): the first match decides."""

    protocol: str  # "tcp" | "udp" | "icmp" | "all" | a protocol number ("47")
    allowed: bool  # ACCEPT, else DROP
    cidrs: tuple[IPv4Network, ...]  # ingress: sources, egress: destinations (IPv4 only)
    ports: PortRange | None = None  # tcp/udp; None: any port (CloudStack sends 0:0)
    icmp_type: int | None = None  # None: any type
    icmp_code: int | None = None  # None: any code


@dataclass(frozen=True)
class NetworkAcl:
    """The whole ACL of one tier (its NIC); each push replaces it."""

    device: str
    ingress: tuple[AclRule, ...] = ()  # traffic into the tier
    egress: tuple[AclRule, ...] = ()  # new connections out of the tier
