"""The persisted desired state: one JSON document (schema: schema/state.schema.json).

The same document is vragent's native push format: `vragent show` prints it and
`vragent apply` accepts it back as a full replacement of the state.
"""

from __future__ import annotations

import json
from pathlib import Path
from ipaddress import IPv6Network

from vragent.subsystems.lb import document as lb_doc
from vragent.subsystems.guestdata import document as vm_data_doc
from vragent.subsystems.monitoring import document as monitoring_doc
from vragent.subsystems.vpc import document as vpc_doc
from vragent.subsystems.vpn import document as vpn_doc
from vragent.errors import InvalidInput, ValidationError
from vragent.model import (DhcpHost, DhcpRange, Direction, FirewallRule, GuestNetwork, IpAlias, PortForward, Protocol, PublicIp, RouterState, StaticNat)
from vragent.tables import text
from vragent.subsystems.network.sysctl import check_overrides
from vragent.fields import Fields, parse_ipv4
from vragent.fields import document_address as _address, document_network as _network, ports_of, ports_text, trusted_constructor
from vragent.subsystems.dhcp import document as dhcp_doc
from vragent.subsystems.firewall import document as firewall_doc
from vragent.subsystems.ipv6 import document as ipv6_doc
from vragent.subsystems.network import document as network_doc

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms a push)
if TYPE_CHECKING:
    from typing import Any

FORMAT = "vragent/1"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "state.schema.json"


def is_native(data: dict) -> bool:
    return "format" in data and "type" not in data


def to_document(state: RouterState) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "cmdline": dict(state.cmdline),
        "public_ips": [
            {"ip": str(p.ip), "prefix": p.prefix, "device": p.device,
             "gateway": str(p.gateway) if p.gateway else None, "source_nat": p.source_nat,
             "one_to_one_nat": p.one_to_one_nat, "first": p.first, "mac": p.mac, "mtu": p.mtu}
            for p in state.public_ips
        ],
        "guest_networks": [
            {"device": n.device, "router_ip": str(n.router_ip), "prefix": n.prefix,
             "gateway": str(n.gateway), "mac": n.mac, "dns": [str(d) for d in n.dns],
             "domain": n.domain, "mtu": n.mtu}
            for n in state.guest_networks
        ],
        "firewall": {
            "egress_default_allow": state.egress_default_allow,
            "rules": [
                {"id": r.id, "direction": r.direction.value, "protocol": r.protocol.value,
                 "public_ip": text(r.public_ip) if r.public_ip else None, "ports": ports_text(r.ports),
                 "icmp_type": r.icmp_type, "icmp_code": r.icmp_code,
                 "source_cidrs": [str(c) for c in r.source_cidrs],
                 "dest_cidrs": [str(c) for c in r.dest_cidrs]}
                for r in state.firewall_rules
            ],
        },
        "port_forwards": [
            {"public_ip": text(r.public_ip), "protocol": r.protocol.value, "public_ports": str(r.public_ports),
             "internal_ip": text(r.internal_ip), "internal_ports": str(r.internal_ports)}
            for r in state.port_forwards
        ],
        "static_nats": [{"public_ip": str(r.public_ip), "internal_ip": str(r.internal_ip)}
                        for r in state.static_nats],
        "sysctl": dict(state.sysctl_overrides),
        "dhcp": {
            "hosts": [
                {"mac": h.mac, "ip": str(h.ip), "hostname": h.hostname, "default_entry": h.default_entry,
                 "ipv6": h.ipv6, "duid": h.duid, "dns": [str(d) for d in h.dns],
                 "gateway": str(h.gateway) if h.gateway else None, "static_routes": h.static_routes}
                for h in state.dhcp_hosts
            ],
            "ranges": [{"router_ip": str(r.router_ip), "gateway": str(r.gateway) if r.gateway else None,
                        "prefix": r.prefix} for r in state.dhcp_ranges],
            "dnsmasq_options": list(state.dnsmasq_options),
        },
    } | ({lb_doc.KEY: lb_doc.to_document(state.load_balancing)} if state.load_balancing != lb_doc.EMPTY else {}) \
      | vm_data_doc.to_document(state.vm_data) | monitoring_doc.to_document(state.monitoring) | ipv6_doc.ipv6_firewall_document(state) \
      | vpc_doc.network_acls_document(state) | network_doc.ip_aliases_document(state) \
      | vpn_doc.to_document(state.remote_access_vpn, state.vpn_users) \
      | vpn_doc.s2s_to_document(state.site_to_site_vpns) \
      | vpc_doc.to_document(state.private_gateways, state.static_routes)


def dumps(state: RouterState, pretty: bool = False) -> str:
    """Compact by default: json's C encoder is skipped when indenting, and the state of
    a large router is written on every change."""
    if pretty:
        return json.dumps(to_document(state), indent=2) + "\n"
    return json.dumps(to_document(state), separators=(",", ":")) + "\n"


_DIRECTIONS = {d.value: d for d in Direction}
_PROTOCOLS = {p.value: p for p in Protocol}


_trusted_firewall_rule = trusted_constructor(FirewallRule)
_trusted_port_forward = trusted_constructor(PortForward)
_trusted_static_nat = trusted_constructor(StaticNat)
_trusted_dhcp_host = trusted_constructor(DhcpHost)


class NotLoaded(tuple):
    """A section load_trusted(rules=False) left out: any use of it is a bug, and says so."""

    def _refuse(self, *args, **kwargs):
        raise RuntimeError("this apply loaded the state without its rule sections and then used them")

    __iter__ = __len__ = __getitem__ = __contains__ = __eq__ = __hash__ = __bool__ = _refuse


def load_trusted(text: str, rules: bool = True) -> RouterState:
    """Load the state file vragent itself wrote, without re-validating every field.

    `rules=False` leaves out the firewall and port-forwarding rules (most of a large
    state, used only to render and check the tables) for an apply that knows it needs
    neither. Raises on anything unexpected; the caller reports the file as unreadable.
    """
    data = json.loads(text)
    if data.get("format") != FORMAT:
        raise ValueError(f"unsupported format {data.get('format')!r}")
    firewall = data.get("firewall", {})
    dhcp = data.get("dhcp", {})
    vm_data, monitoring = vm_data_doc.load_trusted(data), monitoring_doc.load_trusted(data)
    remote_access_vpn, vpn_users = vpn_doc.load_trusted(data)
    private_gateways, static_routes = vpc_doc.load_trusted(data)
    return RouterState(
        remote_access_vpn=remote_access_vpn, vpn_users=vpn_users,
        site_to_site_vpns=vpn_doc.s2s_load_trusted(data),
        private_gateways=private_gateways, static_routes=static_routes,
        cmdline=tuple(sorted(data.get("cmdline", {}).items())),
        public_ips=tuple(PublicIp(_address(p["ip"]), p["prefix"], p["device"],
                                  _address(p["gateway"]) if p.get("gateway") else None,
                                  p.get("source_nat", False), p.get("one_to_one_nat", False), p.get("first", False),
                                  p.get("mac"), p.get("mtu")) for p in data.get("public_ips", [])),
        guest_networks=tuple(GuestNetwork(n["device"], _address(n["router_ip"]), n["prefix"],
                                          _address(n.get("gateway") or n["router_ip"]), n.get("mac"),
                                          tuple(_address(d) for d in n.get("dns", [])), n.get("domain", ""),
                                          n.get("mtu")) for n in data.get("guest_networks", [])),
        firewall_rules=NotLoaded() if not rules else tuple(_trusted_firewall_rule(r["id"], _DIRECTIONS[r["direction"]], _PROTOCOLS[r["protocol"]],
                                          _address(r["public_ip"]) if r.get("public_ip") else None,
                                          ports_of(r.get("ports")), r.get("icmp_type"), r.get("icmp_code"),
                                          tuple(_network(c) for c in r.get("source_cidrs", [])),
                                          tuple(_network(c) for c in r.get("dest_cidrs", [])))
                             for r in firewall.get("rules", [])),
        egress_default_allow=firewall.get("egress_default_allow", True),
        port_forwards=NotLoaded() if not rules else tuple(_trusted_port_forward(_address(r["public_ip"]), _PROTOCOLS[r["protocol"]],
                                        ports_of(r["public_ports"]), _address(r["internal_ip"]),
                                        ports_of(r["internal_ports"])) for r in data.get("port_forwards", [])),
        static_nats=tuple(_trusted_static_nat(_address(r["public_ip"]), _address(r["internal_ip"]))
                          for r in data.get("static_nats", [])),
        sysctl_overrides=tuple(sorted(data.get("sysctl", {}).items())),
        dhcp_hosts=tuple(_trusted_dhcp_host(h["mac"], _address(h["ip"]), h["hostname"], h.get("default_entry", True),
                                  h.get("ipv6"), h.get("duid"), tuple(_address(d) for d in h.get("dns", [])),
                                  _address(h["gateway"]) if h.get("gateway") else None, h.get("static_routes", ""))
                         for h in dhcp.get("hosts", [])),
        dhcp_ranges=tuple(DhcpRange(_address(r["router_ip"]), _address(r["gateway"]) if r.get("gateway") else None,
                                    r["prefix"]) for r in dhcp.get("ranges", [])),
        dnsmasq_options=tuple(dhcp.get("dnsmasq_options", [])),
        load_balancing=lb_doc.load_trusted(data.get(lb_doc.KEY)),
        vm_data=vm_data, monitoring=monitoring,
        ipv6_firewall_rules=tuple(
            FirewallRule(r["id"], _DIRECTIONS[r["direction"]], _PROTOCOLS[r["protocol"]], None,
                         ports_of(r.get("ports")), r.get("icmp_type"), r.get("icmp_code"),
                         tuple(IPv6Network(c) for c in r.get("source_cidrs", [])),
                         tuple(IPv6Network(c) for c in r.get("dest_cidrs", [])))
            for r in data.get(ipv6_doc.IPV6_FIREWALL, {}).get("rules", [])),
        ipv6_egress_default_allow=data.get(ipv6_doc.IPV6_FIREWALL, {}).get("egress_default_allow", True),
        network_acls=vpc_doc.network_acls_trusted(data),
        ip_aliases=tuple(IpAlias(_address(a["ip"]), a["prefix"]) for a in data.get(network_doc.IP_ALIASES, [])),
    )


def from_document(data: Any, path: str, errors: list[ValidationError]) -> RouterState:
    """Parse a native document; problems are appended to `errors` with JSON paths."""
    doc = Fields(data, path, errors)
    if doc.string("format") not in (None, FORMAT):
        doc.error("format", f"unsupported format {doc.data.get('format')!r}; expected {FORMAT!r}")
        return RouterState()
    cmdline = doc.raw("cmdline", {})
    if not isinstance(cmdline, dict) or not all(isinstance(v, str) for v in cmdline.values()):
        doc.error("cmdline", "expected an object of strings")
        cmdline = {}
    state = RouterState().with_cmdline(cmdline)

    public_ips = []
    for index, raw in enumerate(doc.list("public_ips", [])):
        item = Fields(raw, f"{doc.at('public_ips')}[{index}]", errors)
        ip, device = item.ipv4("ip"), item.device("device")
        prefix = item.integer("prefix", lo=0, hi=32)
        if None not in (ip, device, prefix):
            public_ips.append(PublicIp(ip, prefix, device, item.ipv4("gateway", None),
                                       bool(item.boolean("source_nat", False)),
                                       bool(item.boolean("one_to_one_nat", False)),
                                       bool(item.boolean("first", False)), item.string("mac", None),
                                       item.integer("mtu", None, lo=68, hi=65535)))

    guests = []
    for index, raw in enumerate(doc.list("guest_networks", [])):
        item = Fields(raw, f"{doc.at('guest_networks')}[{index}]", errors)
        device, router_ip = item.device("device"), item.ipv4("router_ip")
        prefix = item.integer("prefix", lo=0, hi=32)
        dns = []
        for d_index, value in enumerate(item.list("dns", [])):
            address = parse_ipv4(str(value), f"{item.at('dns')}[{d_index}]", errors)
            if address:
                dns.append(address)
        if None not in (device, router_ip, prefix):
            guests.append(GuestNetwork(device, router_ip, prefix, item.ipv4("gateway", None) or router_ip,
                                       item.string("mac", None), tuple(dns), item.string("domain", ""),
                                       item.integer("mtu", None, lo=68, hi=65535)))

    firewall = Fields(doc.raw("firewall", {}), doc.at("firewall"), errors)
    rules = []
    for index, raw in enumerate(firewall.list("rules", [])):
        item = Fields(raw, f"{firewall.at('rules')}[{index}]", errors)
        rule = firewall_doc.firewall_rule(item)
        if rule is not None:
            rules.append(rule)

    forwards = []
    for index, raw in enumerate(doc.list("port_forwards", [])):
        item = Fields(raw, f"{doc.at('port_forwards')}[{index}]", errors)
        protocol = item.enum("protocol", Protocol)
        values = (item.ipv4("public_ip"), protocol, item.port_range("public_ports"),
                  item.ipv4("internal_ip"), item.port_range("internal_ports"))
        if None not in values:
            if values[2].size != values[4].size:
                item.error("internal_ports", "must have as many ports as public_ports")
            else:
                forwards.append(PortForward(*values))

    nats = []
    for index, raw in enumerate(doc.list("static_nats", [])):
        item = Fields(raw, f"{doc.at('static_nats')}[{index}]", errors)
        public_ip, internal_ip = item.ipv4("public_ip"), item.ipv4("internal_ip")
        if public_ip and internal_ip:
            nats.append(StaticNat(public_ip, internal_ip))

    sysctl = doc.raw("sysctl", {})
    if not isinstance(sysctl, dict):
        doc.error("sysctl", "expected an object of key: value")
        sysctl = {}
    errors.extend(check_overrides(sysctl, doc.at("sysctl")))

    ipv6_firewall = Fields(doc.raw(ipv6_doc.IPV6_FIREWALL, {}), doc.at(ipv6_doc.IPV6_FIREWALL), errors)
    ipv6_rules = []
    for index, raw in enumerate(ipv6_firewall.list("rules", []) or []):
        rule = firewall_doc.firewall_rule(Fields(raw, f"{ipv6_firewall.at('rules')}[{index}]", errors), ipv6=True)
        if rule is not None:
            ipv6_rules.append(rule)

    dhcp_hosts, dhcp_ranges, dnsmasq_options = dhcp_doc.from_document(doc, errors)
    vm_data, monitoring = vm_data_doc.from_document(doc, errors), monitoring_doc.from_document(doc, errors)
    aliases: dict = {}
    for index, raw in enumerate(doc.list(network_doc.IP_ALIASES, []) or []):
        item = Fields(raw, f"{doc.at(network_doc.IP_ALIASES)}[{index}]", errors)
        ip, prefix = item.ipv4("ip"), item.integer("prefix", lo=0, hi=30)
        if ip is not None and prefix is not None:
            if ip in aliases:
                item.error("ip", f"{ip} is listed twice")
            aliases[ip] = IpAlias(ip, prefix)
    remote_access_vpn, vpn_users = vpn_doc.from_document(doc, errors)
    private_gateways, static_routes = vpc_doc.from_document(doc, errors)
    return RouterState(
        remote_access_vpn=remote_access_vpn, vpn_users=vpn_users,
        site_to_site_vpns=vpn_doc.s2s_from_document(doc, errors),
        private_gateways=private_gateways, static_routes=static_routes,
        vm_data=vm_data, monitoring=monitoring,
        dhcp_hosts=dhcp_hosts, dhcp_ranges=dhcp_ranges, dnsmasq_options=dnsmasq_options,
        cmdline=state.cmdline,
        public_ips=tuple(sorted(public_ips, key=lambda p: p.ip)),
        guest_networks=tuple(sorted(guests, key=lambda n: n.device)),
        firewall_rules=tuple(rules),
        egress_default_allow=bool(firewall.boolean("egress_default_allow", True)),
        port_forwards=tuple(sorted(forwards, key=lambda r: (r.public_ip, r.protocol.value, r.public_ports))),
        static_nats=tuple(sorted(nats, key=lambda r: r.public_ip)),
        load_balancing=lb_doc.from_document(doc.raw(lb_doc.KEY, None), doc.at(lb_doc.KEY), errors),
        ipv6_firewall_rules=tuple(ipv6_rules),
        ipv6_egress_default_allow=bool(ipv6_firewall.boolean("egress_default_allow", True)),
        network_acls=vpc_doc.network_acls_section(doc, errors),
        ip_aliases=tuple(sorted(aliases.values())),
    ).with_sysctl_overrides({str(k): str(v) for k, v in sysctl.items()})


def loads(text: str, path: str = "state") -> RouterState:
    errors: list[ValidationError] = []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput([ValidationError(f"{path}:$", f"not valid JSON: {exc}")]) from None
    state = from_document(data, f"{path}:$", errors)
    if errors:
        raise InvalidInput(errors)
    return state
