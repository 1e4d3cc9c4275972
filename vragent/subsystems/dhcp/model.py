"""DHCP hosts and ranges (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address


@dataclass(frozen=True)
class DhcpHost:
    """A guest VM's static lease and name (CloudStack `dhcpentry`)."""

    mac: str  # lower case, colon separated
    ip: IPv4Address
    hostname: str
    default_entry: bool = True  # false: a secondary NIC; no router, DNS or domain options
    ipv6: str | None = None  # stored for the IPv6 work; not rendered yet
    duid: str | None = None
    dns: tuple[IPv4Address, ...] = ()  # per-VM DNS servers the management server computed
    gateway: IPv4Address | None = None
    static_routes: str = ""


@dataclass(frozen=True)
class DhcpRange:
    """An extra DHCP range (CloudStack `dhcpconfig`, shared networks with IP aliases)."""

    router_ip: IPv4Address
    gateway: IPv4Address | None
    prefix: int
