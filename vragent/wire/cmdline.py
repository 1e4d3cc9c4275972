"""`cmdline` (cmd_line.json): the router's boot parameters, all strings.

The incumbent replaces the whole `config` section with each push and normalises
`redundant_router` to "true"/"false"; so do we.
"""

from __future__ import annotations

from dataclasses import dataclass

from vragent.model import RouterState
from vragent.wire.fields import Fields, parse_ipv4, parse_prefix

SUPPORTED_ROUTER_TYPES = ("router",)
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
    _check_ipv6(values, section)
    if "redundant_router" in values:
        values["redundant_router"] = "true" if values["redundant_router"].lower() in ("true", "1") else "false"
    return CmdlineChange(tuple(sorted(values.items())), fields.at("cmd_line"))


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
