"""The `dhcp` section of a native document (hosts, ranges, extra dnsmasq options)."""

from __future__ import annotations

from vragent.errors import ValidationError
from vragent.model import DhcpHost, DhcpRange
from vragent.fields import Fields



from vragent.fields import parse_ipv4


def from_document(doc: Fields, errors: list[ValidationError]):
    from vragent.subsystems.dhcp.render import check_options
    from vragent.subsystems.dhcp.dhcpentry import parse_mac, valid_hostname

    section = Fields(doc.raw("dhcp", {}), doc.at("dhcp"), errors)
    hosts = []
    for index, raw in enumerate(section.list("hosts", [])):
        item = Fields(raw, f"{section.at('hosts')}[{index}]", errors)
        mac, ip, hostname = parse_mac(item, "mac"), item.ipv4("ip"), item.string("hostname")
        if hostname is not None and not valid_hostname(hostname):
            item.error("hostname", f"{hostname!r} is not a host name dnsmasq accepts")
            hostname = None
        dns = tuple(a for i, v in enumerate(item.list("dns", []))
                    if (a := parse_ipv4(str(v), f"{item.at('dns')}[{i}]", errors)) is not None)
        if None not in (mac, ip, hostname):
            hosts.append(DhcpHost(mac, ip, hostname, bool(item.boolean("default_entry", True)),
                                  item.string("ipv6", None), item.string("duid", None), dns,
                                  item.ipv4("gateway", None), item.string("static_routes", "") or ""))
    ranges = []
    for index, raw in enumerate(section.list("ranges", [])):
        item = Fields(raw, f"{section.at('ranges')}[{index}]", errors)
        router_ip, prefix = item.ipv4("router_ip"), item.integer("prefix", lo=0, hi=32)
        if router_ip is not None and prefix is not None:
            ranges.append(DhcpRange(router_ip, item.ipv4("gateway", None), prefix))
    options = section.list("dnsmasq_options", []) or []
    errors.extend(check_options(options, section.at("dnsmasq_options")))
    return (tuple(sorted(hosts, key=lambda h: h.ip)), tuple(ranges),
            tuple(str(o) for o in options if isinstance(o, str)))
