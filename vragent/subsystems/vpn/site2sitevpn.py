"""`site2sitevpn` (site_2_site_vpn.json): an IPsec tunnel from the VPC to one peer gateway.

Fields (cloudstack-vr-wave2.md §5.1, Gson snake_case): `local_public_ip`,
`local_guest_cidr` (the VPC CIDR), `local_public_gateway` (ignored, as the incumbent
does: the route to the peer is the router's own), `peer_gateway_ip`,
`peer_guest_cidr_list` (comma-joined), `ike_policy` and `esp_policy` in CloudStack's
syntax ("aes128-sha1;modp1536": cipher-hash pairs, comma-joined, then an optional DH
group after `;`), `ike_lifetime` and `esp_lifetime` (seconds), `ipsec_psk`, `dpd`,
`passive`, `encap` (force UDP encapsulation), `split_connections`, `ike_version`
(ike | ikev1 | ikev2) and `create`.

Merge is keyed by the peer gateway: a push replaces that peer's connection and leaves
the others alone; `create: false` removes it. Unlike the incumbent, a `create: false`
for a peer the router does not have changes nothing (the incumbent stored it and then
configured that very VPN).

The pre-shared key is a secret: no message repeats it; only the state (mode 0600) and
charon's swanctl.conf (mode 0600) hold it; diffs, --json and archives mask it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address

from vragent.model import RouterState, SiteToSiteVpn
from vragent.fields import Fields, parse_ipv4_network
from vragent.subsystems.vpn.remoteaccessvpn import psk_problem

IKE_VERSIONS = ("ike", "ikev1", "ikev2")
# What charon can do with the plugins vragent loads (subsystems/vpn/render.py PLUGINS, all in
# Debian's libstrongswan): AES-CBC (aes), HMAC with SHA-1/SHA-2/MD5 (sha1, sha2, md5,
# hmac) and MODP groups (gmp). 3DES, ECP groups and GCM need the openssl plugin.
CIPHERS = ("aes128", "aes192", "aes256")
HASHES = ("sha1", "sha256", "sha384", "sha512", "md5")
DH_GROUPS = ("modp1024", "modp1536", "modp2048", "modp3072", "modp4096", "modp6144", "modp8192")
LIFETIME_MIN, LIFETIME_MAX = 60, 86400 * 7


@dataclass(frozen=True)
class Site2SiteChange:
    vpn: SiteToSiteVpn | None  # None: `create: false`
    peer: IPv4Address
    path: str


def proposal_problem(policy: str) -> str | None:
    """Why a CloudStack policy cannot be proposed by vragent's charon (None if it can)."""
    suites, _, group = policy.partition(";")
    if not suites.strip():
        return f"{policy!r} names no cipher (expected e.g. 'aes128-sha1;modp1536')"
    if group.strip() and group.strip().lower() not in DH_GROUPS:
        return (f"DH group {group.strip()!r} is not supported (strongSwan's default plugins do "
                f"{', '.join(DH_GROUPS)})")
    for suite in suites.split(","):
        cipher, dash, digest = suite.strip().lower().partition("-")
        if cipher not in CIPHERS:
            return f"cipher {cipher or suite!r} is not supported (only {', '.join(CIPHERS)}: no openssl plugin)"
        if not dash or digest not in HASHES:
            return f"hash {digest or suite!r} is not supported (only {', '.join(HASHES)})"
    return None


def proposals(policy: str) -> list[str]:
    """strongSwan proposals for a validated CloudStack policy: 'aes128-sha1;modp1536'
    becomes ['aes128-sha1-modp1536'] (the incumbent replaced ';' by '-' too)."""
    suites, _, group = policy.partition(";")
    group = group.strip().lower()
    return ["-".join(p for p in (suite.strip().lower(), group) if p) for suite in suites.split(",")]


def parse(fields: Fields) -> Site2SiteChange | None:
    before = len(fields.errors)
    peer = fields.ipv4("peer_gateway_ip")
    create = fields.boolean("create", True)
    if not create:
        return Site2SiteChange(None, peer, fields.path) if len(fields.errors) == before and peer else None
    local_ip = fields.ipv4("local_public_ip")
    local_cidr = None
    text = fields.string("local_guest_cidr")
    if text is not None:
        local_cidr = parse_ipv4_network(text.strip(), fields.at("local_guest_cidr"), fields.errors)
    peer_cidrs = []
    text = fields.string("peer_guest_cidr_list")
    if text is not None:
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            network = parse_ipv4_network(item, fields.at("peer_guest_cidr_list"), fields.errors)
            if network is not None and network not in peer_cidrs:
                peer_cidrs.append(network)
        if not peer_cidrs and len(fields.errors) == before:
            fields.error("peer_guest_cidr_list", "names no CIDR")
    policies = {}
    for key in ("ike_policy", "esp_policy"):
        policy = fields.string(key)
        if policy is not None and (problem := proposal_problem(policy)) is not None:
            fields.error(key, problem)
        policies[key] = policy.strip().lower() if policy else policy
    lifetimes = {key: fields.integer(key, lo=LIFETIME_MIN, hi=LIFETIME_MAX) for key in ("ike_lifetime", "esp_lifetime")}
    psk = fields.raw("ipsec_psk")
    if psk is not None and (problem := psk_problem(psk)) is not None:
        fields.error("ipsec_psk", problem)
    flags = {key: fields.boolean(key, False) for key in ("dpd", "passive", "encap", "split_connections")}
    version = fields.string("ike_version", "ike")
    if version is not None and version.lower() not in IKE_VERSIONS:
        fields.error("ike_version", f"{version!r} is not one of {', '.join(IKE_VERSIONS)}")
    if len(fields.errors) > before or None in (peer, local_ip, local_cidr, psk, *policies.values(),
                                               *lifetimes.values()):
        return None
    vpn = SiteToSiteVpn(peer, local_ip, local_cidr, tuple(peer_cidrs), policies["ike_policy"],
                        policies["esp_policy"], lifetimes["ike_lifetime"], lifetimes["esp_lifetime"], psk,
                        dpd=flags["dpd"], passive=flags["passive"], encap=flags["encap"],
                        split=flags["split_connections"], ike_version=version.lower())
    return Site2SiteChange(vpn, peer, fields.path)


def merge(state: RouterState, change: Site2SiteChange) -> RouterState:
    kept = {v.peer: v for v in state.site_to_site_vpns if v.peer != change.peer}
    if change.vpn is not None:
        kept[change.peer] = change.vpn
    return replace(state, site_to_site_vpns=tuple(kept[p] for p in sorted(kept)))


def origins(change: Site2SiteChange) -> list[tuple[object, str]]:
    return [(change.vpn, change.path)] if change.vpn is not None else []
