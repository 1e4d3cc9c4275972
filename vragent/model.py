"""The router's desired state: frozen dataclasses with ipaddress types.

Everything the agent renders is derived from one `RouterState`. The wire layer
(`vragent.wire`) turns CloudStack payloads into changes of this state; the
`state` module stores it as the documented JSON document.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface

from vragent.values import device_index, CONTROL_DEVICE, GUEST_DEVICE, PUBLIC_DEVICE, SSH_PORT, Direction, PortRange, Protocol
from vragent.subsystems.network.model import (GuestNetwork, GuestSubnet, IpAlias, PrivateGateway, PublicIp, RouterIpv6,
                                             StaticRoute)
from vragent.subsystems.firewall.model import FirewallRule, PortForward, StaticNat
from vragent.subsystems.vpc.model import AclRule, NetworkAcl
from vragent.subsystems.dhcp.model import DhcpHost, DhcpRange
from vragent.subsystems.guestdata.model import VmData, PasswordOffer
from vragent.subsystems.monitoring.model import MonitoredService, Monitoring
from vragent.subsystems.vpn.model import RemoteAccessVpn, SiteToSiteVpn, VpnUser
from vragent.subsystems.lb.model import (CloudStackLb, LbAccept, LbAlgorithm, LbBackend, LbHealthCheck, LbProtocol,
                                        LbStats, LbStickiness, LbTimeouts, LoadBalancer, LoadBalancing, SslCert)

# Every section type, importable from here as before the split (one home each, above).
__all__ = ["device_index", 'CONTROL_DEVICE', 'GUEST_DEVICE', 'PUBLIC_DEVICE', 'SSH_PORT', 'Direction', 'PortRange', 'Protocol', 'PublicIp', 'PrivateGateway', 'StaticRoute', 'GuestNetwork', 'IpAlias', 'GuestSubnet', 'RouterIpv6', 'FirewallRule', 'PortForward', 'StaticNat', 'AclRule', 'NetworkAcl', 'DhcpHost', 'DhcpRange', 'VmData', 'PasswordOffer', 'MonitoredService', 'Monitoring', 'RemoteAccessVpn', 'SiteToSiteVpn', 'VpnUser', 'LbProtocol', 'LbAlgorithm', 'LbAccept', 'SslCert', 'CloudStackLb', 'LbBackend', 'LbHealthCheck', 'LbStickiness', 'LbTimeouts', 'LoadBalancer', 'LbStats', 'LoadBalancing']

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
        a dhcpsrvr (its IPv6 keys are kept, not acted on: subsystems/network/cmdline.py).
        The cmdline validated them (subsystems/network/cmdline.py)."""
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


# -- load balancing (HAProxy) ------------------------------------------------------------

