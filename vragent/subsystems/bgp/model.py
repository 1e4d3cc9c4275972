"""The section types of dynamic routing (bgp_peers.json)."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network


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
