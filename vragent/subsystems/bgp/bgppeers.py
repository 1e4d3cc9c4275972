"""`bgppeers` (bgp_peers.json): the BGP peers of a dynamically routed network or VPC.

SetBgpPeersCommand -> SetBgpPeersConfigItem -> model BgpPeers: `peers`, a list of
BgpPeerTO in Gson's snake_case with nulls left out: `peer_id`, `peer_as_number`,
`ip4_address`, `ip6_address`, `peer_password`, `network_id`, `network_as_number` (the
router's own AS: the network's, or the VPC's for every tier), `guest_ip4_cidr`,
`guest_ip6_cidr`, and `details` keyed by BgpPeer.Detail names (`EBGP_MultiHop`).
CommandSetupHelper.createBgpPeersCommands sends one entry per (peer, dynamically routed
network): a VPC's peer comes once per tier. The list is the whole truth: each push
replaces every peer (the incumbent's cs_bgppeers clears its bag first), and an empty
list removes them all.

The peer password is a secret: no error message repeats it, and it reaches only the
state (mode 0600) and bgpd's own file (mode 0600); diffs and archives mask it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv6Address

from vragent.model import BgpPeer, RouterState
from vragent.fields import Fields, parse_ipv4_network, parse_ipv6_network

AS_MAX = 4294967295  # 4-byte AS numbers (RFC 6793)
PASSWORD_MAX = 80  # TCP MD5 key length (Linux TCP_MD5SIG_MAXKEYLEN)
MULTIHOP_DETAIL = "EBGP_MultiHop"


@dataclass(frozen=True)
class BgpPeersChange:
    peers: tuple[tuple[BgpPeer, str], ...]  # (peer, JSON path)


def password_problem(value: object) -> str | None:
    """Why `value` cannot be a peer password (the password itself is never repeated)."""
    if not isinstance(value, str):
        return "expected a string"
    if not value:
        return "is empty"
    if len(value) > PASSWORD_MAX:
        return f"is longer than {PASSWORD_MAX} characters (TCP MD5 keys)"
    # bgpd reads it as one word of its config: no spaces, nothing unprintable.
    if not value.isascii() or not value.isprintable() or " " in value:
        return "must be printable ASCII without spaces (not shown)"
    return None


def parse_peer(item: Fields) -> BgpPeer | None:
    """One BgpPeerTO; None (with errors) when it is not usable."""
    before = len(item.errors)
    peer_id = item.integer("peer_id", lo=1)
    network_id = item.integer("network_id", lo=1)
    peer_as = item.integer("peer_as_number", lo=1, hi=AS_MAX)
    network_as = item.integer("network_as_number", lo=1, hi=AS_MAX)
    ip4 = item.ipv4("ip4_address", None)
    ip6 = _ipv6(item, "ip6_address")
    cidr4 = item.string("guest_ip4_cidr", None)
    cidr6 = item.string("guest_ip6_cidr", None)
    guest4 = parse_ipv4_network(cidr4.strip(), item.at("guest_ip4_cidr"), item.errors) if cidr4 else None
    guest6 = parse_ipv6_network(cidr6.strip(), item.at("guest_ip6_cidr"), item.errors) if cidr6 else None
    password = item.raw("peer_password", None)
    if password is not None and (problem := password_problem(password)) is not None:
        item.error("peer_password", problem)
    multihop = None
    details = item.raw("details", None)
    if details is not None:
        if not isinstance(details, dict):
            item.error("details", "expected an object (BgpPeer.Detail -> value)")
        else:
            # Other details (none exist in 4.22) are not acted on.
            multihop = Fields(details, item.at("details"), item.errors).integer(MULTIHOP_DETAIL, None, lo=1, hi=255)
    if len(item.errors) > before:
        return None
    # The incumbent configures a family only when both its peer address and guest CIDR are sent.
    if not ((ip4 is not None and guest4 is not None) or (ip6 is not None and guest6 is not None)):
        item.error("ip4_address", "a peer needs ip4_address with guest_ip4_cidr, or ip6_address with guest_ip6_cidr")
        return None
    return BgpPeer(peer_id, network_id, peer_as, network_as, ip4 if guest4 else None, ip6 if guest6 else None,
                   guest4 if ip4 else None, guest6 if ip6 else None, password, multihop)


def _ipv6(item: Fields, key: str) -> IPv6Address | None:
    text = item.string(key, None)
    if not text:
        return None
    try:
        address = IPv6Address(text.strip())
    except ValueError:
        item.error(key, f"{text!r} is not an IPv6 address")
        return None
    if address.is_multicast or address.is_unspecified or address.is_loopback:
        item.error(key, f"{address} is not a unicast address")
        return None
    return address


def parse_peers(fields: Fields, key: str) -> tuple[tuple[BgpPeer, str], ...] | None:
    """The list under `key`, each entry checked alone and against the others."""
    raw = fields.list(key)
    if raw is None:
        return None
    peers: list[tuple[BgpPeer, str]] = []
    seen: dict[tuple[int, int], str] = {}
    remote_as: dict[object, tuple[int, str]] = {}
    own_as: tuple[int, str] | None = None
    for index, entry in enumerate(raw):
        item = Fields(entry, f"{fields.at(key)}[{index}]", fields.errors)
        peer = parse_peer(item)
        if peer is None:
            continue
        if (peer.peer_id, peer.network_id) in seen:
            item.error("peer_id", f"peer {peer.peer_id} for network {peer.network_id} also appears at "
                                  f"{seen[(peer.peer_id, peer.network_id)]}")
            continue
        seen[(peer.peer_id, peer.network_id)] = item.path
        # One BGP instance: the router has one AS (the network's or the VPC's).
        if own_as is not None and peer.network_as != own_as[0]:
            item.error("network_as_number", f"{peer.network_as} differs from {own_as[0]} at {own_as[1]}: "
                                            "the router speaks BGP from one AS")
            continue
        own_as = own_as or (peer.network_as, item.path)
        clash = False
        for address in (peer.ip4, peer.ip6):
            if address is None:
                continue
            known = remote_as.get(address)
            if known is not None and known[0] != peer.peer_as:
                item.error("peer_as_number", f"{address} is AS {known[0]} at {known[1]}: one neighbor, one AS")
                clash = True
            remote_as.setdefault(address, (peer.peer_as, item.path))
        if not clash:
            peers.append((peer, item.path))
    return tuple(sorted(peers, key=lambda pair: (pair[0].peer_id, pair[0].network_id)))


def parse(fields: Fields) -> BgpPeersChange | None:
    before = len(fields.errors)
    peers = parse_peers(fields, "peers")
    if peers is None or len(fields.errors) > before:
        return None
    return BgpPeersChange(peers)


def merge(state: RouterState, change: BgpPeersChange) -> RouterState:
    return replace(state, bgp_peers=tuple(peer for peer, _ in change.peers))


def origins(change: BgpPeersChange) -> list[tuple[object, str]]:
    return list(change.peers)
