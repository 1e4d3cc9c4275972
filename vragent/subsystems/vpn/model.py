"""Remote-access and site-to-site VPNs and VPN users (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from vragent.values import PUBLIC_DEVICE


@dataclass(frozen=True)
class RemoteAccessVpn:
    """L2TP/IPsec remote-access VPN (CloudStack `remoteaccessvpn`) on one public IP.

    IPsec (strongSwan, IKEv1 main mode, PSK, transport mode) protects L2TP (xl2tpd) on
    udp 1701; pppd authenticates the users (CHAP, `vpn_users`) and gives each client an
    address from `ip_range`, its own end being `local_ip` (subsystems/vpn/render.py)."""

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

    @staticmethod
    def public_openings() -> list[str]:
        """What the VPN's public IP takes in (iptables match parts): IKE, NAT-T, ESP, and L2TP
        out of ESP. Its own vr-vpn accepts them, and so does that IP's ingress firewall."""
        rules = [f"-p udp -m udp --dport {port}" for port in _VPN_IKE_PORTS]
        return rules + ["-p esp", f"-p udp {_THROUGH_IPSEC} -m udp --dport 1701"]


# udp 1701 (L2TP) counts only when it came out of an IPsec SA (iptables-extensions(8),
# policy): plain L2TP would carry CHAP over the internet unprotected.
_VPN_IKE_PORTS = (500, 4500)
_THROUGH_IPSEC = "-m policy --dir in --pol ipsec --proto esp"


@dataclass(frozen=True)
class SiteToSiteVpn:
    """A site-to-site IPsec VPN (CloudStack `site2sitevpn`) to one peer gateway, from the
    VPC's local public IP; keyed by the peer (subsystems/vpn/site2site.py renders it for charon).

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
