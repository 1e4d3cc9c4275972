"""Dual stack on an isolated router: the cmdline's IPv6, ipv6firewallrules, what renders
from them, and that an IPv4-only router renders exactly what it did before."""

from __future__ import annotations

import json
from ipaddress import IPv6Address, IPv6Network

import jsonschema
import pytest

from tests.unit import pushes as p
from vragent.pipeline import document as state_doc
from vragent.errors import InvalidInput
from vragent.model import Direction, Protocol, RouterState
from vragent.paths import Paths
from vragent.subsystems.network import render as addresses, sysctl
from vragent.subsystems.ipv6 import rules as netfilter6, render as radvd
from vragent.pipeline.intake import merge_documents

SCHEMA = json.loads(state_doc.SCHEMA_PATH.read_text())
GUEST6 = "2001:db8:77:5::/64"
IPV6_CMDLINE = {"eth0ip6": "2001:db8:77:5::1", "eth0ip6prelen": "64", "guestgw6": "2001:db8:77:5::1",
                "guestcidr6size": "64", "eth2ip6": "2001:db8:ff::10", "eth2ip6prelen": "64",
                "ip6gateway": "2001:db8:ff::1", "ip6dns1": "2001:db8:53::1", "ip6firewall": "true"}


def merged(*documents, state=None) -> RouterState:
    return merge_documents(state or RouterState(), list(documents))


def errors_of(*documents, state=None) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        merged(*documents, state=state)
    return [str(e) for e in caught.value.errors]


def dual_stack(**overrides):
    return p.doc("cmd_line.json", p.cmdline(**{**IPV6_CMDLINE, **overrides}))


def rule(rule_id, protocol="tcp", ports=None, traffic_type="Ingress", cidrs=("::/0",), revoked=False,
         default_egress_policy=True, **extra):
    raw = {"id": rule_id, "protocol": protocol, "revoked": revoked, "already_added": False,
           "source_cidr_list": list(cidrs), "dest_cidr_list": [], "purpose": "Ipv6Firewall",
           "traffic_type": traffic_type, "default_egress_policy": default_egress_policy,
           "guest_ip6_cidr": GUEST6, **extra}
    if ports is not None:
        raw["src_port_range"] = list(ports)
    return raw


def ipv6_rules(*rules, name="ipv6_firewall_rules.json.a"):
    return p.doc(name, {"type": "ipv6firewallrules", "rules": list(rules)})


def test_the_cmdline_gives_the_guest_network_public_address_and_gateway():
    ipv6 = merged(dual_stack()).ipv6
    assert ipv6.guest_network == IPv6Network(GUEST6)
    assert str(ipv6.public) == "2001:db8:ff::10/64"
    assert ipv6.upstream_gateway == IPv6Address("2001:db8:ff::1")
    links = addresses.render(merged(dual_stack()))
    assert [str(i) for i in links.addresses["eth0"]] == ["192.0.2.1/24", "2001:db8:77:5::1/64"]
    assert links.default_route6 == (IPv6Address("2001:db8:ff::1"), "eth2")


def test_bad_ipv6_settings_are_reported_with_their_paths():
    errors = errors_of(dual_stack(eth0ip6="2001:db8::zz", eth2ip6prelen="129", ip6dns1="192.0.2.53",
                                  guestgw6="ff02::1"))
    assert "cmd_line.json:$.cmd_line.eth0ip6: '2001:db8::zz' is not an IPv6 address" in errors
    assert "cmd_line.json:$.cmd_line.eth2ip6prelen: '129' is not an IPv6 prefix length (1..128)" in errors
    assert "cmd_line.json:$.cmd_line.ip6dns1: '192.0.2.53' is not an IPv6 address" in errors
    assert "cmd_line.json:$.cmd_line.guestgw6: ff02::1 is not a unicast address" in errors


def test_the_guest_network_must_be_a_slaac_sized_64_and_hold_its_gateway():
    assert errors_of(dual_stack(eth0ip6prelen="56", guestcidr6size="56")) == [
        "cmd_line.json:$.cmd_line.eth0ip6prelen: 56: guests configure themselves by SLAAC, which needs a /64",
        "cmd_line.json:$.cmd_line.guestcidr6size: 56: guests configure themselves by SLAAC, which needs a /64"]
    assert errors_of(dual_stack(guestgw6="2001:db8:77:6::1")) == [
        "cmd_line.json:$.cmd_line.guestgw6: 2001:db8:77:6::1 is outside the guest network 2001:db8:77:5::/64"]
    assert errors_of(dual_stack(ip6gateway="2001:db8:fe::1")) == [
        "cmd_line.json:$.cmd_line.ip6gateway: 2001:db8:fe::1 is neither link-local nor in the public IPv6 "
        "network 2001:db8:ff::/64"]
    assert merged(dual_stack(ip6gateway="fe80::1")).ipv6.upstream_gateway == IPv6Address("fe80::1")


def test_ipv6_keys_without_the_guest_address_are_refused():
    assert errors_of(p.doc("cmd_line.json", p.cmdline(eth2ip6="2001:db8:ff::10"))) == [
        "cmd_line.json:$.cmd_line.eth0ip6: is required with eth2ip6 (the guest IPv6 network)"]


def test_the_zones_ipv6_dns_alone_leaves_an_ipv4_router_ipv4():
    # finalizeVirtualMachineProfile appends ip6dns1/ip6dns2 from the default NIC whenever the
    # router serves DNS or DHCP, guest IPv6 or not; the incumbent uses them only with eth0ip6.
    state = merged(p.doc("cmd_line.json", p.cmdline(ip6dns1="2001:db8:53::1", ip6dns2="2001:db8:53::2")))
    assert state.ipv6 is None
    assert errors_of(p.doc("cmd_line.json", p.cmdline(ip6dns1="192.0.2.53"))) == [
        "cmd_line.json:$.cmd_line.ip6dns1: '192.0.2.53' is not an IPv6 address"]


def test_ipv6_rules_take_ipv6_cidrs_only_and_name_the_routers_guest_network():
    errors = errors_of(dual_stack(), ipv6_rules(
        rule(1, ports=(22, 22), cidrs=("203.0.113.0/24",)),
        rule(2, protocol="gre"), rule(3, ports=(80, 80), guest_ip6_cidr="10.1.1.0/24")))
    assert errors == [
        "ipv6_firewall_rules.json.a:$.rules[0].source_cidr_list[0]: '203.0.113.0/24' is not an IPv6 CIDR",
        "ipv6_firewall_rules.json.a:$.rules[1].protocol: 'gre' is not one of tcp, udp, icmp (icmpv6), all",
        "ipv6_firewall_rules.json.a:$.rules[2].guest_ip6_cidr: '10.1.1.0/24' is not an IPv6 CIDR"]
    # Checked once the push parses: the rules are for this router's guest network.
    assert errors_of(dual_stack(), ipv6_rules(rule(2, ports=(80, 80), guest_ip6_cidr="2001:db8:99::/64"))) == [
        "ipv6_firewall_rules.json.a:$.rules[0].guest_ip6_cidr: 2001:db8:99::/64 is not this router's guest "
        "IPv6 network 2001:db8:77:5::/64"]


def test_ipv6_rules_on_a_router_without_ipv6_are_refused():
    assert errors_of(p.doc("cmd_line.json", p.cmdline()), ipv6_rules(rule(1, ports=(22, 22)))) == [
        "ipv6_firewall_rules.json.a:$.rules[0]: this router has no guest IPv6 network (cmdline eth0ip6)"]


def test_rules_merge_by_id_revoked_ones_go_and_the_system_rule_sets_the_egress_default():
    state = merged(dual_stack(), ipv6_rules(
        rule(7, ports=(22, 22)), rule(3, protocol="icmpv6", icmp_type=128, icmp_code=-1),
        rule(1188, protocol="all", traffic_type="Egress", cidrs=(), default_egress_policy=False)))
    assert [r.id for r in state.ipv6_firewall_rules] == ["3", "7"]
    assert state.ipv6_firewall_rules[0].protocol is Protocol.ICMP
    assert not state.ipv6_egress_default_allow
    state = merged(ipv6_rules(rule(7, ports=(22, 22), revoked=True), name="b"), state=state)
    assert [(r.id, r.direction) for r in state.ipv6_firewall_rules] == [("3", Direction.INGRESS)]
    assert not state.ipv6_egress_default_allow  # kept until a push says otherwise


def test_the_dual_stack_state_round_trips_and_matches_the_schema():
    state = merged(dual_stack(), ipv6_rules(
        rule(7, ports=(22, 23), cidrs=("2001:db8:aa::/48",)),
        rule(8, protocol="udp", ports=(53, 53), traffic_type="Egress", default_egress_policy=False)))
    document = state_doc.to_document(state)
    jsonschema.validate(document, SCHEMA)
    text = state_doc.dumps(state)
    assert state_doc.load_trusted(text) == state
    assert state_doc.loads(text) == state


def test_the_native_document_refuses_an_ipv4_cidr_in_an_ipv6_rule():
    document = state_doc.to_document(merged(dual_stack()))
    document["ipv6_firewall"] = {"rules": [{"id": "1", "direction": "ingress", "protocol": "tcp",
                                            "ports": "22:22", "source_cidrs": ["10.0.0.0/8"]}]}
    with pytest.raises(InvalidInput) as caught:
        state_doc.loads(json.dumps(document))
    assert [str(e) for e in caught.value.errors] == [
        "state:$.ipv6_firewall.rules[0].source_cidrs[0]: '10.0.0.0/8' is not an IPv6 CIDR"]


def test_an_ipv4_only_router_renders_nothing_of_ipv6(tmp_path):
    state = merged(p.doc("cmd_line.json", p.cmdline()))
    assert state.ipv6 is None
    assert "ipv6_firewall" not in state_doc.to_document(state)
    assert netfilter6.render(state) == {}
    assert not any(key.startswith("net.ipv6") for key in sysctl.render(state))
    links = addresses.render(state)
    assert links.default_route6 is None and all(i.version == 4 for ifs in links.addresses.values() for i in ifs)
    assert not radvd.daemon(state, Paths(tmp_path)).enabled


def test_radvd_advertises_the_router_for_dns_unless_the_network_uses_external_dns():
    assert "RDNSS 2001:db8:77:5::1\n" in radvd.config_text(merged(dual_stack()))
    assert "RDNSS 2001:db8:53::1\n" in radvd.config_text(merged(dual_stack(useextdns="true")))
