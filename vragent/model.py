"""The router's desired state: frozen dataclasses with ipaddress types.

Everything the agent renders is derived from one `RouterState`. The wire layer
(`vragent.wire`) turns CloudStack payloads into changes of this state; the
`state` module stores it as the documented JSON document.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network

# CloudStack's NIC layout for an isolated-network router (cmdline type "router"); a
# shared network's DHCP server (type "dhcpsrvr") has the same eth0 and eth1 and no public NIC.
GUEST_DEVICE = "eth0"
CONTROL_DEVICE = "eth1"
PUBLIC_DEVICE = "eth2"
SSH_PORT = 3922
# A VPC router (cmdline type "vpcrouter") is laid out differently: eth0 control, eth1 the
# first public NIC (source NAT), eth2+ tiers and more public NICs (cloudstack-vr.md §1.2).
# Code that needs "the control NIC" or "the public NIC" asks the state (RouterState.layout).
ISOLATED_ROUTER = "router"  # an isolated network's gateway: NAT, firewall, DHCP, DNS, guest data
VPC_ROUTER = "vpcrouter"
DHCP_SERVER = "dhcpsrvr"  # a shared network's (or basic zone's) VR: not the guests' gateway
ROUTER_TYPES = (ISOLATED_ROUTER, VPC_ROUTER, DHCP_SERVER)


@dataclass(frozen=True)
class NicLayout:
    control: str
    public: str | None  # the first public NIC: source NAT and the default route (a dhcpsrvr has none)
    guest: str | None  # the cmdline's guest NIC (isolated only); VPC tiers come by guestnetwork


LAYOUTS = {
    ISOLATED_ROUTER: NicLayout(control=CONTROL_DEVICE, public=PUBLIC_DEVICE, guest=GUEST_DEVICE),
    VPC_ROUTER: NicLayout(control="eth0", public="eth1", guest=None),
    DHCP_SERVER: NicLayout(control=CONTROL_DEVICE, public=None, guest=GUEST_DEVICE),
}

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
class PrivateGateway:
    """A VPC router's private gateway (an `ips` entry with `is_private_gateway: true`): its
    address on its own NIC, in a network outside the VPC (a VLAN to a site, a datacentre),
    whose `gateway` is the next hop of that network. Routed, not a public NIC: its traffic
    passes its `networkacl` (private_gateway_acl) and is source-NAT'ed to `ip` only with
    `source_nat` (render/netfilter_vpc.py)."""

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
class VmData:
    """What one guest VM reads from the router's metadata service (CloudStack `vmdata`).

    Served over HTTP to requests from `ip` only (render/metadata.py, metadata_server.py).
    """

    ip: IPv4Address
    userdata: bytes | None = None  # decoded; None: no user-data (404)
    # (key, value) in the order pushed: the manifest lists exactly these keys. Keys are
    # unique case-insensitively (the paths guests request are matched that way).
    metadata: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return self.userdata is None and not self.metadata


@dataclass(frozen=True)
class PasswordOffer:
    """A VM's new password (CloudStack `vmpassword`), handed to the password server during
    the apply of its push and never persisted in the state: the server keeps it (its own
    file, mode 0600) until the VM acknowledges it. None: the VM has none (a pending one is
    withdrawn)."""

    ip: IPv4Address
    password: str | None = field(repr=False)


@dataclass(frozen=True)
class MonitoredService:
    """One `[name]:key=value:...` entry of a `monitorservice` push's `config`."""

    name: str
    options: tuple[tuple[str, str], ...]  # processname, servicename, pidfile, ... as sent


@dataclass(frozen=True)
class Monitoring:
    """The management server's health-monitoring settings (CloudStack `monitorservice`).

    vragent runs no checks itself; it keeps the settings and renders the files the image's
    own monitor script reads (render/monitoring.py)."""

    services: tuple[MonitoredService, ...] = ()
    disabled: bool = False  # disable_monitoring
    health_checks_enabled: bool = False
    basic_interval: int | None = None  # minutes
    advanced_interval: int | None = None  # minutes
    excluded_checks: tuple[str, ...] = ()
    health_checks_config: str = "{}"  # a JSON object, opaque to vragent, canonical (sorted keys)


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


@dataclass(frozen=True)
class RemoteAccessVpn:
    """L2TP/IPsec remote-access VPN (CloudStack `remoteaccessvpn`) on one public IP.

    IPsec (strongSwan, IKEv1 main mode, PSK, transport mode) protects L2TP (xl2tpd) on
    udp 1701; pppd authenticates the users (CHAP, `vpn_users`) and gives each client an
    address from `ip_range`, its own end being `local_ip` (render/vpn.py)."""

    public_ip: IPv4Address  # vpn_server_ip
    first: IPv4Address  # ip_range: the clients' addresses, first..last
    last: IPv4Address
    local_ip: IPv4Address  # the router's end of every client's PPP link
    preshared_key: str = field(repr=False)
    local_cidr: IPv4Network | None = None  # the guest network the clients reach
    public_interface: str = PUBLIC_DEVICE

    @property
    def ip_range(self) -> str:
        return f"{self.first}-{self.last}"

    def range_networks(self) -> list[IPv4Network]:
        from ipaddress import summarize_address_range

        return list(summarize_address_range(self.first, self.last))


@dataclass(frozen=True)
class SiteToSiteVpn:
    """A site-to-site IPsec VPN (CloudStack `site2sitevpn`) to one peer gateway, from the
    VPC's local public IP; keyed by the peer (render/site2site.py renders it for charon).

    Proposals are kept as CloudStack sends them ("aes128-sha1;modp1536": ciphers and
    hashes, then an optional DH group), validated against what strongSwan's loaded
    plugins can do; lifetimes in seconds."""

    peer: IPv4Address  # peer_gateway_ip
    local_ip: IPv4Address  # local_public_ip
    local_cidr: IPv4Network  # local_guest_cidr: the VPC
    peer_cidrs: tuple[IPv4Network, ...]  # peer_guest_cidr_list, in the sent order
    ike_policy: str
    esp_policy: str
    ike_lifetime: int
    esp_lifetime: int
    preshared_key: str = field(repr=False)
    dpd: bool = False
    passive: bool = False
    encap: bool = False
    split: bool = False
    ike_version: str = "ike"  # ike (either), ikev1, ikev2

    @property
    def name(self) -> str:
        # The incumbent's `vpn-<peer>`, with dashes: a dot in a strongswan.conf-style
        # section name would nest sections (strongswan.conf(5)), so 198.51.100.1 is
        # vpn-198-51-100-1.
        return "vpn-" + str(self.peer).replace(".", "-")


@dataclass(frozen=True)
class VpnUser:
    """A remote-access VPN user (CloudStack `vpnuserlist`): a line of chap-secrets."""

    name: str
    password: str = field(repr=False)


def _frozen_items(mapping: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((mapping or {}).items()))


@dataclass(frozen=True)
class RouterState:
    """The whole desired state of one router."""

    cmdline: tuple[tuple[str, str], ...] = ()
    public_ips: tuple[PublicIp, ...] = ()
    guest_networks: tuple[GuestNetwork, ...] = ()
    firewall_rules: tuple[FirewallRule, ...] = ()
    # The incumbent VR closes egress at its first converge (FW_EGRESS_RULES flushed, FORWARD
    # policy DROP) and opens it only when the management server says so: the system egress
    # rule of a default-allow offering (createDefaultEgressFirewallRule). A deny offering
    # with no egress rule sends no egress push at all, so a fresh router must deny.
    egress_default_allow: bool = False
    port_forwards: tuple[PortForward, ...] = ()
    static_nats: tuple[StaticNat, ...] = ()
    sysctl_overrides: tuple[tuple[str, str], ...] = ()
    dhcp_hosts: tuple[DhcpHost, ...] = ()
    dhcp_ranges: tuple[DhcpRange, ...] = ()
    dnsmasq_options: tuple[str, ...] = ()  # extra dnsmasq.conf lines, native document only
    # Defined at the end of this module; a factory so the class may come after this one.
    load_balancing: LoadBalancing = field(default_factory=lambda: LoadBalancing())
    vm_data: tuple[VmData, ...] = ()  # sorted by VM IP
    monitoring: Monitoring | None = None
    # `ipv6firewallrules`: ingress to and egress from the guest /64, with their own default
    # egress policy (the system egress rule's `default_egress_policy`).
    ipv6_firewall_rules: tuple[FirewallRule, ...] = ()
    ipv6_egress_default_allow: bool = True
    # `networkacl`: a VPC router's ACLs, one per tier, sorted by device.
    network_acls: tuple[NetworkAcl, ...] = ()
    # `remoteaccessvpn` (None: no VPN) and its users (`vpnuserlist`), sorted by name.
    remote_access_vpn: RemoteAccessVpn | None = None
    vpn_users: tuple[VpnUser, ...] = ()
    # `site2sitevpn`: one connection per peer gateway (VPC routers), sorted by peer.
    site_to_site_vpns: tuple[SiteToSiteVpn, ...] = ()
    # Passwords of the push being applied; never persisted (see PasswordOffer).
    password_offers: tuple[PasswordOffer, ...] = ()
    # `ipaliases`: further subnets of a shared network, on the guest NIC (sorted by IP).
    ip_aliases: tuple[IpAlias, ...] = ()
    # A VPC router's private gateways (sorted by device) and static routes (sorted by network).
    private_gateways: tuple[PrivateGateway, ...] = ()
    static_routes: tuple[StaticRoute, ...] = ()
    # `bgppeers` (dynamic routing of a routed network or VPC): its BGP peers, sorted by
    # (peer, network) id; each push replaces them all (wire/bgppeers.py).
    bgp_peers: tuple[BgpPeer, ...] = ()

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
    def is_vpc(self) -> bool:
        return self.router_type == VPC_ROUTER

    @property
    def is_dhcp_server(self) -> bool:
        """A shared network's VR (cmdline type dhcpsrvr): it serves DHCP, DNS and guest data
        but is not the guests' gateway, forwards nothing and does no NAT."""
        return self.router_type == DHCP_SERVER

    @property
    def layout(self) -> NicLayout:
        """Which NIC is what; an isolated router's until a cmdline says otherwise."""
        return LAYOUTS.get(self.router_type or "", LAYOUTS[ISOLATED_ROUTER])

    @property
    def vpc_cidr(self) -> IPv4Network | None:
        """The VPC's super-CIDR (cmdline `vpccidr`, validated there); None off a VPC."""
        text = self.config.get("vpccidr")
        return IPv4Network(text, strict=False) if self.is_vpc and text else None

    def private_gateway(self, device: str) -> PrivateGateway | None:
        return next((p for p in self.private_gateways if p.device == device), None)

    def static_route_device(self, route: StaticRoute) -> str | None:
        """The NIC a static route leaves by: the private gateway's or tier's whose network holds
        its gateway (never the router's own address); None when it is on no such network."""
        for pgw in self.private_gateways:
            if route.gateway in pgw.network and route.gateway != pgw.ip:
                return pgw.device
        for tier in self.all_guest_networks() if self.is_vpc else ():
            if route.gateway in tier.network and route.gateway != tier.router_ip:
                return tier.device
        return None

    def network_acl(self, device: str) -> NetworkAcl | None:
        return next((acl for acl in self.network_acls if acl.device == device), None)

    @property
    def serves_guests(self) -> bool:
        """Runs dnsmasq and the data server: a router of a known type with a guest network."""
        return self.router_type in ROUTER_TYPES and bool(self.all_guest_networks())

    def cmdline_interface(self, device: str) -> IPv4Interface | None:
        cfg = self.config
        ip, mask = cfg.get(f"{device}ip"), cfg.get(f"{device}mask")
        if not ip or not mask or ip == "0.0.0.0":
            return None
        return IPv4Interface(f"{ip}/{mask}")

    @property
    def ipv6(self) -> RouterIpv6 | None:
        """The router's IPv6 settings, or None for an IPv4-only router (no `eth0ip6`) and for
        a dhcpsrvr (its IPv6 keys are kept, not acted on: wire/cmdline.py).
        The cmdline validated them (wire/cmdline.py)."""
        cfg = self.config
        # A VPC's eth0 is control; a shared network's IPv6 is not the VR's.
        if not cfg.get("eth0ip6") or self.is_vpc or self.is_dhcp_server:
            return None
        prefix = cfg.get("eth0ip6prelen") or cfg.get("guestcidr6size") or "64"
        guest = IPv6Interface(f"{cfg['eth0ip6']}/{prefix}")
        public = None
        if cfg.get("eth2ip6"):
            public = IPv6Interface(f"{cfg['eth2ip6']}/{cfg.get('eth2ip6prelen') or '64'}")
        return RouterIpv6(
            guest=guest,
            gateway=IPv6Address(cfg.get("guestgw6") or guest.ip),
            public=public,
            upstream_gateway=IPv6Address(cfg["ip6gateway"]) if cfg.get("ip6gateway") else None,
            dns=tuple(IPv6Address(cfg[k]) for k in ("ip6dns1", "ip6dns2") if cfg.get(k)),
        )

    @property
    def control_interface(self) -> IPv4Interface | None:
        return self.cmdline_interface(self.layout.control)

    @property
    def default_gateway(self) -> tuple[IPv4Address, str] | None:
        """(gateway, device) of the default route: the source-NAT public IP's network; on a
        DHCP server the cmdline's `gateway` on the guest NIC (the shared network's)."""
        if self.is_dhcp_server:
            gateway = _address_or_none(self.config.get("gateway", ""))
            guest = self.cmdline_interface(GUEST_DEVICE)
            on_link = [a.network for a in self.ip_aliases] + ([guest.network] if guest is not None else [])
            if gateway is not None and any(gateway in network for network in on_link):
                return gateway, GUEST_DEVICE
            return None
        for pip in self.ordered_public_ips():
            if pip.gateway is not None and pip.gateway in pip.interface.network:
                return pip.gateway, pip.device
        gateway = self.config.get("gateway")
        device = self.layout.public
        public = self.cmdline_interface(device)
        if gateway and public is not None and IPv4Address(gateway) in public.network:
            return IPv4Address(gateway), device
        return None

    def all_guest_networks(self) -> tuple[GuestNetwork, ...]:
        """Guest networks from `guestnetwork` pushes, plus eth0 from the cmdline (isolated
        routers; a VPC's tiers all come by `guestnetwork`)."""
        networks = list(self.guest_networks)
        guest = self.cmdline_interface(GUEST_DEVICE) if self.layout.guest == GUEST_DEVICE else None
        if guest is not None and not any(n.device == GUEST_DEVICE for n in networks):
            cfg = self.config
            dns = tuple(IPv4Address(cfg[k]) for k in ("dns1", "dns2") if cfg.get(k))
            gateway = cfg.get("guestgw") or str(guest.ip)
            if self.is_dhcp_server:
                gateway = shared_network_gateway(cfg, guest) or str(guest.ip)
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

    def own_guest_addresses(self) -> dict[IPv4Address, str]:
        """Address -> guest NIC of every address the router answers guests on: each guest
        network's router address, the gateway where the router is it (a redundant pair's
        VIP), and each IP alias."""
        found: dict[IPv4Address, str] = {}
        for network in self.all_guest_networks():
            found.setdefault(network.router_ip, network.device)
            if not self.is_dhcp_server:
                found.setdefault(network.gateway, network.device)
        for alias in self.ip_aliases:
            found.setdefault(alias.ip, GUEST_DEVICE)
        return found

    def guest_subnets(self) -> tuple[GuestSubnet, ...]:
        """The subnets served: each guest network, then each IP alias's subnet (whose
        gateway is the `dhcpconfig` entry's for that alias, else the one its VMs'
        `dhcpentry` pushes name)."""
        networks = self.all_guest_networks()
        # dnsmasq tags every request with the name of the NIC it came in on too, so with
        # several subnets on eth0 a range tagged "eth0" would match every VM there, and its
        # options win over the alias range's: each subnet then gets a tag of its own.
        shared = bool(self.ip_aliases)
        subnets = [GuestSubnet(n.device, n.router_ip, n.network, n.gateway, n.dns, n.domain, n.mtu,
                               _subnet_tag("guest", n.router_ip) if shared and n.device == GUEST_DEVICE else n.device)
                   for n in networks]
        primary = next((n for n in networks if n.device == GUEST_DEVICE), None)
        for alias in self.ip_aliases:
            network = alias.network
            gateway = next((r.gateway for r in self.dhcp_ranges if r.router_ip == alias.ip
                            and r.gateway is not None and r.gateway in network), None)
            if gateway is None:
                gateway = next((h.gateway for h in self.dhcp_hosts if h.ip in network
                                and h.gateway is not None and h.gateway in network and h.gateway != alias.ip), None)
            subnets.append(GuestSubnet(GUEST_DEVICE, alias.ip, network, gateway,
                                       primary.dns if primary else (), primary.domain if primary else "",
                                       primary.mtu if primary else None, _subnet_tag("alias", alias.ip)))
        return tuple(subnets)

    def ordered_public_ips(self) -> tuple[PublicIp, ...]:
        """Public IPs with the cmdline's public address (eth2; a VPC's eth1) folded in;
        source NAT first per NIC."""
        ips = list(self.public_ips)
        device = self.layout.public
        public = self.cmdline_interface(device)
        if public is not None and not any(p.ip == public.ip for p in ips):
            gateway = self.config.get("gateway")
            ips.append(
                PublicIp(
                    ip=public.ip,
                    prefix=public.network.prefixlen,
                    device=device,
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


def _subnet_tag(kind: str, address: IPv4Address) -> str:
    return f"{kind}_{str(address).replace('.', '_')}"


def _address_or_none(text: str) -> IPv4Address | None:
    """A cmdline value as an address (the wire checked it; a native document's may be anything)."""
    try:
        return IPv4Address(text)
    except ValueError:
        return None


def shared_network_gateway(cfg: dict[str, str], guest: IPv4Interface) -> str | None:
    """The guests' gateway on a shared network: `guestgw`, else the cmdline's `gateway` when
    it is inside the guest network (a basic zone's or shared network's own router)."""
    if cfg.get("guestgw"):
        return cfg["guestgw"]
    gateway = _address_or_none(cfg.get("gateway", ""))
    return str(gateway) if gateway is not None and gateway in guest.network else None


def device_index(device: str) -> int:
    """eth12 -> 12; CloudStack names NICs ethN after nic_dev_id."""
    digits = device[3:]
    return int(digits) if device.startswith("eth") and digits.isdigit() else 1 << 16


# -- load balancing (HAProxy) ------------------------------------------------------------

class LbProtocol(enum.Enum):
    TCP = "tcp"
    HTTP = "http"


class LbAlgorithm(enum.Enum):
    ROUNDROBIN = "roundrobin"
    LEASTCONN = "leastconn"
    SOURCE = "source"


@dataclass(frozen=True)
class LbAccept:
    """An INPUT accept for a listener HAProxy serves on the router itself (TCP)."""

    ip: IPv4Address | None  # None: any local address (CloudStack's stats visibility "all")
    port: int
    sources: tuple[IPv4Network, ...] = ()  # empty: from anywhere


@dataclass(frozen=True)
class SslCert:
    """A certificate HAProxy serves (CloudStack `ssl_certs`), stored as <name>.pem."""

    name: str
    cert: str
    key: str
    chain: str = ""

    def pem(self) -> str:
        """Certificate, chain, key: the order HAProxy and the incumbent use; CRLF normalised."""
        parts = [self.cert, self.chain, self.key]
        return "".join(part.replace("\r\n", "\n").rstrip("\n") + "\n" for part in parts if part.strip())


@dataclass(frozen=True)
class CloudStackLb:
    """The management server's whole HAProxy configuration (`loadbalancer` push)."""

    configuration: tuple[str, ...]  # one element per line, as sent (embedded newlines split)
    listeners: tuple[LbAccept, ...] = ()  # add_rules: one per live load balancer rule
    stats: tuple[LbAccept, ...] = ()  # stat_rules
    ssl_certs: tuple[SslCert, ...] = ()


@dataclass(frozen=True)
class LbBackend:
    ip: IPv4Address
    port: int

    @property
    def server_name(self) -> str:
        # Named by address, not position, so server state survives removing another backend.
        return f"srv_{str(self.ip).replace('.', '_')}_{self.port}"


@dataclass(frozen=True)
class LbHealthCheck:
    interval_ms: int = 2000
    rise: int = 2
    fall: int = 3
    http_path: str | None = None  # http listeners: GET this path; otherwise a TCP connect check


@dataclass(frozen=True)
class LbStickiness:
    method: str  # "source" (stick table on the client address) | "cookie" (http only)
    cookie: str = "SERVERID"
    table_size: int = 200000
    expire_s: int = 1800


@dataclass(frozen=True)
class LbTimeouts:
    connect_ms: int = 5000
    client_ms: int = 50000
    server_ms: int = 50000


@dataclass(frozen=True)
class LoadBalancer:
    """One listener of the native document and the backends it balances across."""

    name: str
    ip: IPv4Address
    port: int
    protocol: LbProtocol = LbProtocol.TCP
    algorithm: LbAlgorithm = LbAlgorithm.ROUNDROBIN
    backends: tuple[LbBackend, ...] = ()
    health_check: LbHealthCheck | None = None
    stickiness: LbStickiness | None = None
    timeouts: LbTimeouts = LbTimeouts()
    maxconn: int | None = None


@dataclass(frozen=True)
class LbStats:
    """HAProxy's statistics page, only where a document asks for it."""

    ip: IPv4Address
    port: int
    uri: str = "/admin?stats"
    auth: str | None = None  # "user:password"
    sources: tuple[IPv4Network, ...] = ()
    public: bool = False  # must be set to serve it on a public IP


@dataclass(frozen=True)
class LoadBalancing:
    """Either the management server's configuration or native load balancers, never both."""

    cloudstack: CloudStackLb | None = None
    balancers: tuple[LoadBalancer, ...] = ()
    stats: LbStats | None = None
    maxconn: int = 4096

    @property
    def active(self) -> bool:
        """HAProxy runs while at least one load balancer exists."""
        if self.cloudstack is not None:
            return bool(self.cloudstack.listeners)
        return bool(self.balancers)

    def accepts(self) -> tuple[LbAccept, ...]:
        """The INPUT accepts HAProxy's listeners need; none while HAProxy does not run."""
        if not self.active:
            return ()
        if self.cloudstack is not None:
            found = list(self.cloudstack.listeners) + list(self.cloudstack.stats)
        else:
            found = [LbAccept(lb.ip, lb.port) for lb in self.balancers]
            if self.stats is not None:
                found.append(LbAccept(self.stats.ip, self.stats.port, self.stats.sources))
        return tuple(dict.fromkeys(found))


# -- dynamic routing (BGP) of routed networks: wire/bgppeers.py, render/bgp.py -------------

@dataclass(frozen=True)
class BgpPeer:
    """One BgpPeerTO of `bgp_peers.json`: a peer of the router for one guest network (a
    routed network, or one dynamically routed tier of a routed VPC), whose CIDR the router
    advertises to it from the network's (or VPC's) own AS."""

    peer_id: int
    network_id: int
    peer_as: int  # peer_as_number
    network_as: int  # network_as_number: the router's own AS
    ip4: IPv4Address | None = None  # ip4_address
    ip6: IPv6Address | None = None  # ip6_address
    guest_ip4_cidr: IPv4Network | None = None
    guest_ip6_cidr: IPv6Network | None = None
    password: str | None = None  # peer_password: TCP MD5 (RFC 2385), a secret
    ebgp_multihop: int | None = None  # details.EBGP_MultiHop
