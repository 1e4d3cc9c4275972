"""The network subsystem's part of the state: public IPs, private gateways, static routes,
guest networks, IP aliases, the subnets the router serves, IPv6 (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network


@dataclass(frozen=True)
class PublicIp:
    """An address the router holds on a public NIC (CloudStack `ips` entry)."""

    ip: IPv4Address
    prefix: int
    device: str
    gateway: IPv4Address | None = None
    source_nat: bool = False
    one_to_one_nat: bool = False
    first: bool = False
    mac: str | None = None
    mtu: int | None = None

    @property
    def interface(self) -> IPv4Interface:
        return IPv4Interface(f"{self.ip}/{self.prefix}")


@dataclass(frozen=True)
class PrivateGateway:
    """A VPC router's private gateway (an `ips` entry with `is_private_gateway: true`): its
    address on its own NIC, in a network outside the VPC (a VLAN to a site, a datacentre),
    whose `gateway` is the next hop of that network. Routed, not a public NIC: its traffic
    passes its `networkacl` (private_gateway_acl) and is source-NAT'ed to `ip` only with
    `source_nat` (subsystems/vpc/rules.py)."""

    ip: IPv4Address
    prefix: int
    device: str
    gateway: IPv4Address | None = None
    source_nat: bool = False
    mac: str | None = None
    mtu: int | None = None

    @property
    def interface(self) -> IPv4Interface:
        return IPv4Interface(f"{self.ip}/{self.prefix}")

    @property
    def network(self) -> IPv4Network:
        return self.interface.network


@dataclass(frozen=True, order=True)
class StaticRoute:
    """A VPC static route (CloudStack `staticroutes`): `network via gateway` in the main
    table. `private_gateway` is the private gateway's IP it was created on (`ip_address`;
    None for a route created with a next hop only)."""

    network: IPv4Network
    gateway: IPv4Address
    private_gateway: IPv4Address | None = None


@dataclass(frozen=True)
class GuestNetwork:
    """A guest network served by the router on one NIC."""

    device: str
    router_ip: IPv4Address
    prefix: int
    gateway: IPv4Address  # the VRRP VIP on a redundant pair, else router_ip
    mac: str | None = None
    dns: tuple[IPv4Address, ...] = ()
    domain: str = ""
    mtu: int | None = None

    @property
    def network(self) -> IPv4Network:
        return IPv4Interface(f"{self.router_ip}/{self.prefix}").network

    @property
    def interface(self) -> IPv4Interface:
        return IPv4Interface(f"{self.router_ip}/{self.prefix}")


@dataclass(frozen=True, order=True)
class IpAlias:
    """An extra address of the router on the guest NIC (CloudStack `ipaliases`): a shared
    network with several IP ranges gets one per further subnet, and the router serves
    DHCP, DNS and guest data to that subnet from it."""

    ip: IPv4Address
    prefix: int

    @property
    def interface(self) -> IPv4Interface:
        return IPv4Interface(f"{self.ip}/{self.prefix}")

    @property
    def network(self) -> IPv4Network:
        return self.interface.network


@dataclass(frozen=True)
class GuestSubnet:
    """One subnet the router serves DHCP, DNS and guest data in, from `address` on `device`:
    a guest network, or an IP alias's subnet on a shared network (derived, never stored)."""

    device: str
    address: IPv4Address  # the router's own address in it
    network: IPv4Network
    gateway: IPv4Address | None  # the guests' router option; None: none known
    dns: tuple[IPv4Address, ...] = ()
    domain: str = ""
    mtu: int | None = None
    tag: str = ""  # dnsmasq's tag for it: the device, or guest_<ip> / alias_<ip> beside IP aliases


@dataclass(frozen=True)
class RouterIpv6:
    """The IPv6 side of an isolated router (dual stack), from its cmdline (`eth0ip6`, ...).

    The guest /64 is served by router advertisements (radvd: SLAAC prefix, RDNSS); IPv6 is
    routed, never NAT'ed: guests keep their own addresses upstream.
    """

    guest: IPv6Interface  # the router's address in the guest network (eth0)
    gateway: IPv6Address  # the guests' gateway (guestgw6; the router's address when absent)
    public: IPv6Interface | None = None  # the router's public IPv6 (eth2)
    upstream_gateway: IPv6Address | None = None  # ip6gateway: the IPv6 default route
    dns: tuple[IPv6Address, ...] = ()  # ip6dns1, ip6dns2: advertised as RDNSS

    @property
    def guest_network(self) -> IPv6Network:
        return self.guest.network
