"""`dhcpentry` (vm_dhcp_entry.json): one guest VM's static lease and DNS name.

One host line per MAC, one name per hostname, one owner per IP: adding an entry drops
any older entry holding the same MAC, IP or hostname (the incumbent keeps duplicates,
which hand out stale addresses). `remove: true` drops the entry of that MAC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from vragent.model import DhcpHost, RouterState
from vragent.fields import Fields, parse_ipv4


_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# dnsmasq's own rule for names it hands out and serves: letters, digits, '-' and '_' per
# label, labels joined by dots; nothing that could end a line or split a field (',').
_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_DUID = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){1,129}$")
_ROUTES = re.compile(r"^[0-9./,: ]*$")


@dataclass(frozen=True)
class DhcpChange:
    host: DhcpHost | None  # None with remove
    mac: str
    path: str


def valid_hostname(name: str) -> bool:
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


def parse_mac(fields: Fields, key: str) -> str | None:
    value = fields.string(key)
    if value is None:
        return None
    mac = value.strip().lower().replace("-", ":")
    if not _MAC.match(mac):
        fields.error(key, f"{value!r} is not a MAC address")
        return None
    return mac


def parse(fields: Fields) -> DhcpChange | None:
    mac = parse_mac(fields, "mac_address")
    remove = fields.boolean("remove", False)
    ip = fields.ipv4("ipv4_address")
    hostname = fields.string("host_name")
    if hostname is not None and not valid_hostname(hostname):
        fields.error("host_name", f"{hostname!r} is not a host name dnsmasq accepts "
                                  "(letters, digits, '-', '_', dot-separated labels of 1-63)")
        hostname = None
    default_entry = fields.boolean("default_entry", True)
    ipv6 = fields.string("ipv6_address", None)
    if ipv6:
        import ipaddress

        try:
            ipaddress.IPv6Address(ipv6)
        except ValueError:
            fields.error("ipv6_address", f"{ipv6!r} is not an IPv6 address")
    duid = fields.string("ipv6_duid", None)
    if duid and not _DUID.match(duid):
        fields.error("ipv6_duid", f"{duid!r} is not a DUID (hex bytes separated by ':')")
    dns = []
    for index, part in enumerate((fields.string("dns_addresses", "") or "").split(",")):
        if part.strip():
            address = parse_ipv4(part.strip(), f"{fields.at('dns_addresses')}[{index}]", fields.errors)
            if address is not None:
                dns.append(address)
    gateway_text = fields.string("default_gateway", "") or ""
    gateway = None
    if gateway_text.strip():
        gateway = parse_ipv4(gateway_text.strip(), fields.at("default_gateway"), fields.errors)
    routes = fields.string("static_routes", "") or ""
    if not _ROUTES.match(routes):
        fields.error("static_routes", "may hold only addresses, prefixes, ',' and ':'")
    if mac is None or remove is None or default_entry is None:
        return None
    if remove:
        return DhcpChange(None, mac, fields.path)
    if ip is None or hostname is None:
        return None
    host = DhcpHost(mac=mac, ip=ip, hostname=hostname, default_entry=default_entry,
                    ipv6=ipv6 or None, duid=duid or None, dns=tuple(dns), gateway=gateway,
                    static_routes=routes)
    return DhcpChange(host, mac, fields.path)


def merge(state: RouterState, change: DhcpChange) -> RouterState:
    host = change.host
    kept = [h for h in state.dhcp_hosts if h.mac != change.mac
            and (host is None or (h.ip != host.ip and h.hostname.lower() != host.hostname.lower()))]
    if host is not None:
        kept.append(host)
    return replace(state, dhcp_hosts=tuple(sorted(kept, key=lambda h: h.ip)))


def origins(change: DhcpChange) -> list[tuple[object, str]]:
    return [(change.host, change.path)] if change.host else []
