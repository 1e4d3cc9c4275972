"""`cmdline` (cmd_line.json): the router's boot parameters, all strings.

The incumbent replaces the whole `config` section with each push and normalises
`redundant_router` to "true"/"false"; so do we.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipaddress import IPv4Interface

from vragent.model import DHCP_SERVER, ROUTER_TYPES, VPC_ROUTER, RouterState, shared_network_gateway
from vragent.fields import Fields, ipv4_or_none, parse_ipv4, parse_ipv4_network, parse_prefix

SUPPORTED_ROUTER_TYPES = ROUTER_TYPES
_ADDRESS_KEYS = ("eth0ip", "eth1ip", "eth2ip", "gateway", "guestgw", "dns1", "dns2",
                 "internaldns1", "internaldns2", "localgw")
_MASK_KEYS = ("eth0mask", "eth1mask", "eth2mask")


@dataclass(frozen=True)
class CmdlineChange:
    values: tuple[tuple[str, str], ...]
    path: str = ""  # JSON path of the cmd_line section, for errors found after the merge


def parse(fields: Fields) -> CmdlineChange | None:
    raw = fields.raw("cmd_line")
    if not isinstance(raw, dict):
        if raw is not None:
            fields.error("cmd_line", "expected an object of key=value strings")
        return None
    section = Fields(raw, fields.at("cmd_line"), fields.errors)
    values: dict[str, str] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if isinstance(value, (dict, list)):
            section.error(key, "expected a string value")
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "\n" in text or "\r" in text or "\0" in text:
            section.error(key, "must not contain line breaks or NUL characters")
            continue
        values[key] = text
    router_type = values.get("type")
    if router_type is None:
        section.error("type", "is required")
    elif router_type not in SUPPORTED_ROUTER_TYPES:
        section.error("type", f"router type {router_type!r} is not supported yet "
                              f"(supported: {', '.join(SUPPORTED_ROUTER_TYPES)})")
    for key in _ADDRESS_KEYS:
        if values.get(key):
            parse_ipv4(values[key], section.at(key), fields.errors)
    for key in _MASK_KEYS:
        if values.get(key) and parse_prefix(values[key]) is None:
            section.error(key, f"{values[key]!r} is not a netmask")
    for device in ("eth0", "eth1", "eth2"):
        if values.get(f"{device}ip") and values[f"{device}ip"] != "0.0.0.0" and not values.get(f"{device}mask"):
            section.error(f"{device}mask", f"is required with {device}ip")
    if values.get("mtu") and not (values["mtu"].isdigit() and 68 <= int(values["mtu"]) <= 65535):
        section.error("mtu", f"{values['mtu']!r} is not an MTU (68..65535)")
    if router_type == VPC_ROUTER:
        _check_vpc(values, section)
    elif router_type == DHCP_SERVER:
        _check_dhcp_server(values, section)
    else:
        _check_ipv6(values, section)
    if "redundant_router" in values:
        values["redundant_router"] = "true" if values["redundant_router"].lower() in ("true", "1") else "false"
    return CmdlineChange(tuple(sorted(values.items())), fields.at("cmd_line"))


# Keys that would configure what vragent does not do on a VPC router yet; refused rather
# than half applied. (ip6dns1/ip6dns2 alone are harmless: they are not read on a VPC.)
_VPC_UNSUPPORTED = {
    "eth0ip6": "IPv6 on VPC tiers is not supported yet",
    "eth1ip6": "IPv6 on VPC tiers is not supported yet",
    "redundant_router": "a redundant VPC router pair is not supported yet",
}


def _check_vpc(values: dict[str, str], section: Fields) -> None:
    """A VPC router: its super-CIDR (every tier lies inside it), the source-NAT IP it names,
    and the offerings vragent does not implement yet (exit 2 rather than a half router)."""
    if not values.get("vpccidr"):
        section.error("vpccidr", "is required for a vpcrouter (the VPC's CIDR)")
    else:
        network = parse_ipv4_network(values["vpccidr"], section.at("vpccidr"), section.errors)
        if network is not None and str(network) != values["vpccidr"].strip():
            section.error("vpccidr", f"{values['vpccidr']!r} has host bits set (the network is {network})")
    if values.get("source_nat_ip"):
        parse_ipv4(values["source_nat_ip"], section.at("source_nat_ip"), section.errors)
    for key, why in _VPC_UNSUPPORTED.items():
        if values.get(key) and values[key].lower() not in ("false", "0"):
            section.error(key, why)
    if values.get("has_public_network", "true").lower() == "false":
        section.error("has_public_network", "a VPC without a public network (no source NAT) is not supported yet")
    if values.get("is_routed", "false").lower() == "true":
        section.error("is_routed", "a routed VPC (no NAT) is not supported yet")


def _check_dhcp_server(values: dict[str, str], section: Fields) -> None:
    """A shared network's VR (cloudstack-vr.md 1.2: eth0 guest, eth1 control, nothing
    else): its guests' gateway is the network's own router, never the VR."""
    if values.get("eth2ip") and values["eth2ip"] != "0.0.0.0":
        section.error("eth2ip", "a dhcpsrvr router has no public NIC (eth0 guest, eth1 control only)")
    if values.get("redundant_router") in ("true", "1"):
        # keepalived would claim the guests' gateway, which here is the network's own router.
        section.error("redundant_router", "a redundant dhcpsrvr pair is not supported yet")
    # IPv6 keys (a dual-stack shared network) are kept and not acted on (model.ipv6): the
    # guests' IPv6 router is the network's own, and a VR advertising itself would give them
    # a second default route that goes nowhere (CloudStack #6700).
    if not values.get("eth0ip") or not values.get("eth0mask") or parse_prefix(values["eth0mask"]) is None \
            or ipv4_or_none(values["eth0ip"]) is None:
        section.error("eth0ip", "is required: a dhcpsrvr router serves its guest network on eth0")
        return
    guest = IPv4Interface(f"{values['eth0ip']}/{parse_prefix(values['eth0mask'])}")
    gateway = shared_network_gateway(values, guest)
    key = "guestgw" if values.get("guestgw") else "gateway"
    if gateway is None:
        section.error("gateway", f"the shared network's gateway (gateway or guestgw) must be inside "
                                 f"the guest network {guest.network}: guests get it as their router")
    elif ipv4_or_none(gateway) is None:
        return  # reported with the address keys
    elif ipv4_or_none(gateway) not in guest.network:
        section.error(key, f"{gateway} is outside the guest network {guest.network}")
    elif ipv4_or_none(gateway) == guest.ip:
        section.error(key, f"{gateway} is the router's own address: a dhcpsrvr router is not "
                           "the guests' gateway")


# IPv6 of an isolated router (dual stack): addresses, prefix lengths, gateways, DNS.
_IPV6_ADDRESS_KEYS = ("eth0ip6", "eth2ip6", "guestgw6", "ip6gateway", "ip6dns1", "ip6dns2")
_IPV6_PREFIX_KEYS = ("eth0ip6prelen", "eth2ip6prelen", "guestcidr6size")
_IPV6_DNS_KEYS = ("ip6dns1", "ip6dns2")
# Guests configure themselves by SLAAC, which takes a /64 prefix only (RFC 4862, 4291).
SLAAC_PREFIX = 64


def _check_ipv6(values: dict[str, str], section: Fields) -> None:
    from ipaddress import IPv6Address, IPv6Interface, IPv6Network

    addresses: dict[str, IPv6Address] = {}
    for key in _IPV6_ADDRESS_KEYS:
        if values.get(key):
            try:
                address = IPv6Address(values[key])
            except ValueError:
                section.error(key, f"{values[key]!r} is not an IPv6 address")
                continue
            if address.is_multicast or address.is_unspecified or address.is_loopback:
                section.error(key, f"{address} is not a unicast address")
                continue
            addresses[key] = address
    prefixes: dict[str, int] = {}
    for key in _IPV6_PREFIX_KEYS:
        if values.get(key):
            text = values[key]
            if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 128):
                section.error(key, f"{text!r} is not an IPv6 prefix length (1..128)")
            else:
                prefixes[key] = int(text)
    # The DNS servers come from the router's default NIC whether or not the guest network has
    # IPv6 (VirtualNetworkApplianceManagerImpl.finalizeVirtualMachineProfile): alone they are
    # the zone's defaults, unused by an IPv4 router, as on the incumbent.
    ipv6_keys = [k for k in (*_IPV6_ADDRESS_KEYS, *_IPV6_PREFIX_KEYS) if values.get(k) and k not in _IPV6_DNS_KEYS]
    if not values.get("eth0ip6"):
        if ipv6_keys:
            section.error("eth0ip6", f"is required with {', '.join(ipv6_keys)} (the guest IPv6 network)")
        return
    guest_ip = addresses.get("eth0ip6")
    if guest_ip is None:
        return
    if guest_ip.is_link_local:
        section.error("eth0ip6", f"{guest_ip} is link-local; the guest network needs a global prefix")
        return
    prefix = prefixes.get("eth0ip6prelen", prefixes.get("guestcidr6size", SLAAC_PREFIX))
    for key in ("eth0ip6prelen", "guestcidr6size"):
        if key in prefixes and prefixes[key] != SLAAC_PREFIX:
            section.error(key, f"{prefixes[key]}: guests configure themselves by SLAAC, which needs a /64")
    guest = IPv6Interface(f"{guest_ip}/{prefix}").network
    if "guestgw6" in addresses and addresses["guestgw6"] not in guest:
        section.error("guestgw6", f"{addresses['guestgw6']} is outside the guest network {guest}")
    public: IPv6Network | None = None
    if "eth2ip6" in addresses:
        public = IPv6Interface(f"{addresses['eth2ip6']}/{prefixes.get('eth2ip6prelen', 64)}").network
        if public.overlaps(guest):
            section.error("eth2ip6", f"{public} overlaps the guest network {guest}")
    gateway = addresses.get("ip6gateway")
    if gateway is not None and not gateway.is_link_local and (public is None or gateway not in public):
        section.error("ip6gateway", f"{gateway} is neither link-local nor in the public IPv6 network "
                                    f"{public or '(no eth2ip6)'}")


def merge(state: RouterState, change: CmdlineChange) -> RouterState:
    return state.with_cmdline(dict(change.values))


# The key the cmd_line section's path is known by in `origins` (checks after the merge).
ORIGIN = "cmdline"


def origins(change: CmdlineChange) -> list[tuple[object, str]]:
    return [(ORIGIN, change.path)]
