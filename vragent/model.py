"""The router's desired state: frozen dataclasses with ipaddress types.

Everything the agent renders is derived from one `RouterState`. The wire layer
(`vragent.wire`) turns CloudStack payloads into changes of this state; the
`state` module stores it as the documented JSON document.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

# CloudStack's NIC layout for an isolated-network router (cmdline type "router").
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
        # The incumbent matches updates and revokes on (public ip, ports, protocol).
        return (self.public_ip, self.public_ports, self.protocol)


@dataclass(frozen=True)
class StaticNat:
    public_ip: IPv4Address
    internal_ip: IPv4Address


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


def _frozen_items(mapping: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((mapping or {}).items()))


@dataclass(frozen=True)
class RouterState:
    """The whole desired state of one router."""

    cmdline: tuple[tuple[str, str], ...] = ()
    public_ips: tuple[PublicIp, ...] = ()
    guest_networks: tuple[GuestNetwork, ...] = ()
    firewall_rules: tuple[FirewallRule, ...] = ()
    egress_default_allow: bool = True
    port_forwards: tuple[PortForward, ...] = ()
    static_nats: tuple[StaticNat, ...] = ()
    sysctl_overrides: tuple[tuple[str, str], ...] = ()
    dhcp_hosts: tuple[DhcpHost, ...] = ()
    dhcp_ranges: tuple[DhcpRange, ...] = ()
    dnsmasq_options: tuple[str, ...] = ()  # extra dnsmasq.conf lines, native document only

    # -- construction helpers ---------------------------------------------------------
    def with_cmdline(self, values: dict[str, str]) -> "RouterState":
        return replace(self, cmdline=_frozen_items(values))

    def with_sysctl_overrides(self, values: dict[str, str]) -> "RouterState":
        return replace(self, sysctl_overrides=_frozen_items(values))

    # -- derived views ----------------------------------------------------------------
    @property
    def config(self) -> dict[str, str]:
        return dict(self.cmdline)

    @property
    def router_type(self) -> str | None:
        return self.config.get("type")

    @property
    def is_empty(self) -> bool:
        return self == RouterState()

    def cmdline_interface(self, device: str) -> IPv4Interface | None:
        cfg = self.config
        ip, mask = cfg.get(f"{device}ip"), cfg.get(f"{device}mask")
        if not ip or not mask or ip == "0.0.0.0":
            return None
        return IPv4Interface(f"{ip}/{mask}")

    @property
    def control_interface(self) -> IPv4Interface | None:
        return self.cmdline_interface(CONTROL_DEVICE)

    @property
    def default_gateway(self) -> tuple[IPv4Address, str] | None:
        """(gateway, device) of the default route: the source-NAT public IP's network."""
        for pip in self.ordered_public_ips():
            if pip.gateway is not None and pip.gateway in pip.interface.network:
                return pip.gateway, pip.device
        gateway = self.config.get("gateway")
        public = self.cmdline_interface(PUBLIC_DEVICE)
        if gateway and public is not None and IPv4Address(gateway) in public.network:
            return IPv4Address(gateway), PUBLIC_DEVICE
        return None

    def all_guest_networks(self) -> tuple[GuestNetwork, ...]:
        """Guest networks from `guestnetwork` pushes, plus eth0 from the cmdline."""
        networks = list(self.guest_networks)
        guest = self.cmdline_interface(GUEST_DEVICE)
        if guest is not None and not any(n.device == GUEST_DEVICE for n in networks):
            cfg = self.config
            dns = tuple(IPv4Address(cfg[k]) for k in ("dns1", "dns2") if cfg.get(k))
            gateway = cfg.get("guestgw") or str(guest.ip)
            networks.append(
                GuestNetwork(
                    device=GUEST_DEVICE,
                    router_ip=guest.ip,
                    prefix=guest.network.prefixlen,
                    gateway=IPv4Address(gateway),
                    dns=dns,
                    domain=cfg.get("domain", ""),
                    mtu=int(cfg["mtu"]) if cfg.get("mtu", "").isdigit() else None,
                )
            )
        return tuple(sorted(networks, key=lambda n: device_index(n.device)))

    def ordered_public_ips(self) -> tuple[PublicIp, ...]:
        """Public IPs with the cmdline's eth2 address folded in; source NAT first per NIC."""
        ips = list(self.public_ips)
        public = self.cmdline_interface(PUBLIC_DEVICE)
        if public is not None and not any(p.ip == public.ip for p in ips):
            gateway = self.config.get("gateway")
            ips.append(
                PublicIp(
                    ip=public.ip,
                    prefix=public.network.prefixlen,
                    device=PUBLIC_DEVICE,
                    gateway=IPv4Address(gateway) if gateway else None,
                    source_nat=not any(p.source_nat for p in ips),
                )
            )
        return tuple(
            sorted(ips, key=lambda p: (device_index(p.device), not p.source_nat, not p.first, p.ip))
        )

    def public_devices(self) -> tuple[str, ...]:
        return tuple(sorted({p.device for p in self.ordered_public_ips()}, key=device_index))

    def source_nat_ip(self, device: str) -> IPv4Address | None:
        on_device = [p for p in self.ordered_public_ips() if p.device == device]
        return on_device[0].ip if on_device else None


def device_index(device: str) -> int:
    """eth12 -> 12; CloudStack names NICs ethN after nic_dev_id."""
    digits = device[3:]
    return int(digits) if device.startswith("eth") and digits.isdigit() else 1 << 16
