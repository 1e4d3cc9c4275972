"""A VPC router in the model: the NIC layout follows the router type, tiers, network ACLs
parsed as the management server sends them, validated with JSON paths, kept in the state."""

from __future__ import annotations

import json
from ipaddress import IPv4Network

import jsonschema
import pytest

from vragent.pipeline import document as state_doc
from vragent.errors import InvalidInput
from vragent.lab import sample_vpc as vpc
from vragent.model import AclRule, PortRange, RouterState
from vragent.subsystems.network import render as addresses
from vragent.pipeline import netfilter
from vragent.pipeline.intake import Document, merge_documents
from vragent.tables import owned_tables

SCHEMA = json.loads(state_doc.SCHEMA_PATH.read_text())


def docs(*payloads: dict) -> list[Document]:
    return [Document(f"{p['type']}.json.{i}", json.loads(json.dumps(p))) for i, p in enumerate(payloads)]


def merged(*payloads: dict, state: RouterState | None = None) -> RouterState:
    return merge_documents(state or RouterState(), docs(*payloads))


def errors_of(*payloads: dict) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        merged(*payloads)
    return [f"{e.path}: {e.message}" for e in caught.value.errors]


# The reference's example push (cloudstack-vr-wave2.md §1.3), on the lab's tier 2.
REFERENCE_ACL = {
    "type": "networkacl", "device": "eth3", "mac_address": "02:00:00:00:01:03", "private_gateway_acl": False,
    "nic_ip": "10.70.2.1", "nic_netmask": "24", "nic_ip6_cidr": "2001:db8:77:3::/64",
    "ingress_rules": [
        {"type": "tcp", "first_port": 443, "last_port": 443, "cidr": "0.0.0.0/0,::/0", "allowed": True},
        {"type": "icmp", "icmp_type": 8, "icmp_code": -1, "cidr": "10.0.0.0/8", "allowed": True},
        {"type": "protocol", "protocol": 47, "cidr": "192.0.2.0/24", "allowed": True}],
    "egress_rules": [
        {"type": "udp", "first_port": 53, "last_port": 53, "cidr": "9.9.9.9/32", "allowed": True},
        {"type": "all", "cidr": "198.51.100.0/24,203.0.113.0/24", "allowed": False}],
    "delete_from_processed_cache": False,
}


def test_the_vpc_layout_puts_control_on_eth0_and_public_on_eth1():
    state = merged(*vpc.vpc())
    assert state.is_vpc and state.layout.control == "eth0" and state.layout.public == "eth1"
    assert str(state.control_interface) == "169.254.1.10/16"
    assert [n.device for n in state.all_guest_networks()] == ["eth2", "eth3"]  # no cmdline eth0 guest
    assert state.default_gateway == (state.public_ips[0].gateway, "eth1")
    links = addresses.render(state)
    assert [str(i) for i in links.addresses["eth1"]] == ["198.51.100.10/24"]
    assert links.addresses["eth5"] == ()  # a NIC without a tier holds no address


def test_the_reference_acl_is_parsed_in_order_with_ipv6_cidrs_left_out():
    state = merged(*vpc.vpc(), REFERENCE_ACL)
    acl = state.network_acl("eth3")
    assert acl.ingress == (
        AclRule("tcp", True, (IPv4Network("0.0.0.0/0"),), PortRange(443, 443)),
        AclRule("icmp", True, (IPv4Network("10.0.0.0/8"),), icmp_type=8),
        AclRule("47", True, (IPv4Network("192.0.2.0/24"),)))
    assert acl.egress[1] == AclRule("all", False, (IPv4Network("198.51.100.0/24"), IPv4Network("203.0.113.0/24")))


def test_tcp_without_ports_matches_every_port_and_ipv6_only_rules_are_skipped():
    acl = vpc.network_acl(2, ingress=[vpc.acl_rule("tcp"), vpc.acl_rule("udp", cidr="2001:db8::/32")])
    state = merged(*vpc.vpc(), acl)
    assert state.network_acl("eth3").ingress == (AclRule("tcp", True, (IPv4Network("0.0.0.0/0"),)),)
    rules = netfilter.render(state)["filter"].chains["ACL_INBOUND_eth3"]
    assert "-A ACL_INBOUND_eth3 -p tcp -j ACCEPT" in rules and rules[-1] == "-A ACL_INBOUND_eth3 -j DROP"


def test_each_push_replaces_the_tiers_whole_acl_and_a_removed_tier_takes_its_acl_along():
    state = merged(*vpc.vpc(), vpc.network_acl(2, ingress=[vpc.acl_rule("tcp", 22)]),
                   vpc.network_acl(1, egress=[vpc.acl_rule("all", allowed=False)]))
    state = merged(vpc.network_acl(2, ingress=[vpc.acl_rule("udp", 53)]), state=state)
    assert [r.protocol for r in state.network_acl("eth3").ingress] == ["udp"]
    state = merged(vpc.guestnetwork(2, add=False), state=state)
    assert [a.device for a in state.network_acls] == ["eth2"]
    assert "ACL_INBOUND_eth3" not in netfilter.render(state)["filter"].chains


def test_acl_errors_name_their_json_paths():
    bad = vpc.network_acl(2, ingress=[{"type": "tcp", "first_port": 90, "last_port": 80, "cidr": "x", "allowed": "yes"},
                                      {"type": "protocol", "protocol": 300, "allowed": True}])
    errors = errors_of(*vpc.vpc(), bad)
    assert any(e.endswith(".ingress_rules[0].last_port: 80 is below first_port 90") for e in errors), errors
    assert any(e.endswith(".ingress_rules[0].cidr[0]: 'x' is not a CIDR") for e in errors), errors
    assert any(".ingress_rules[0].allowed: expected true or false" in e for e in errors), errors
    assert any(e.endswith(".ingress_rules[1].protocol: 300 is outside 0..255") for e in errors), errors


def test_an_acl_needs_a_tier_or_private_gateway_of_a_vpc_router():
    errors = errors_of(*vpc.vpc(tiers=1), vpc.network_acl(2))
    assert errors == ["networkacl.json.3:$.device: eth3 is no tier or private gateway of this router "
                      "(tiers: eth2; private gateways: none)"]
    errors = errors_of(*vpc.vpc(), vpc.private_gateway_acl())
    assert errors == ["networkacl.json.4:$.device: eth4 is no tier or private gateway of this router "
                      "(tiers: eth2, eth3; private gateways: none)"]


def test_nic_roles_follow_the_router_type():
    # A tier on the control NIC, a public IP on a tier's NIC: both refused on a VPC router.
    errors = errors_of(*vpc.vpc(), {**vpc.guestnetwork(1), "device": "eth0"})
    assert any("eth0 is the control NIC of a vpcrouter" in e for e in errors), errors
    errors = errors_of(*vpc.vpc(), vpc.ips({**vpc.ip_entry("198.51.100.20"), "nic_dev_id": 2}))
    assert any("eth2 is a guest network's NIC, not a public one" in e for e in errors), errors


def test_vpc_cmdline_keys_are_validated():
    errors = errors_of(vpc.cmdline(vpccidr="", source_nat_ip="198.51.100.300", is_routed="true"))
    assert "cmdline.json.0:$.cmd_line.vpccidr: is required for a vpcrouter (the VPC's CIDR)" in errors
    assert any(e.startswith("cmdline.json.0:$.cmd_line.source_nat_ip:") for e in errors), errors
    assert any(e.startswith("cmdline.json.0:$.cmd_line.is_routed:") for e in errors), errors


def test_the_acls_round_trip_through_the_state_document_and_match_its_schema():
    state = merged(*vpc.vpc(), REFERENCE_ACL, vpc.network_acl(1, egress=[vpc.acl_rule("all", allowed=False)]))
    assert state_doc.loads(state_doc.dumps(state)) == state
    assert state_doc.load_trusted(state_doc.dumps(state)) == state
    jsonschema.validate(state_doc.to_document(state), SCHEMA)


def test_an_extra_public_nic_gets_its_own_table_and_snats_to_the_vpcs_source_nat_ip():
    from vragent.lab.topology import SECOND_PUBLIC_IPS, SOURCE_NAT_IP
    from vragent.subsystems.vpc import rules as netfilter_vpc
    from vragent.subsystems.network import routing

    extra = vpc.ips(vpc.ip_entry(SOURCE_NAT_IP, source_nat=True), vpc.ip_entry(SECOND_PUBLIC_IPS[0], nic=4))
    state = merged(*vpc.vpc(), extra)
    assert routing.render(state).devices == ("eth1", "eth4")
    assert owned_tables(["eth0", "eth1", "eth4"]) == {101, 104}
    assert str(netfilter_vpc.source_nat_address(state, "eth1")) == SOURCE_NAT_IP
    assert str(netfilter_vpc.source_nat_address(state, "eth4")) == SOURCE_NAT_IP  # the cmdline's source_nat_ip
    # Without a source_nat_ip on the cmdline, eth4 falls back to its own first IP.
    bare = merged(vpc.cmdline(source_nat_ip=""), *vpc.vpc()[1:], extra)
    assert str(netfilter_vpc.source_nat_address(bare, "eth4")) == SECOND_PUBLIC_IPS[0]
    # An isolated router's control NIC (eth1) holds no public IP: no table 101 is rendered.
    from vragent.lab import sample

    isolated = merged(sample.cmdline(), sample.ips())
    assert routing.render(isolated).devices == ("eth2",)


# -- private gateways and static routes (cloudstack-vr-wave2.md §1.4, §1.5) -------------------

PGW = [vpc.ips(vpc.private_gateway_entry()), vpc.private_gateway_acl(ingress=[vpc.acl_rule("tcp", 22, cidr="10.70.1.0/24")])]


def test_a_private_gateway_is_its_own_nic_not_a_public_ip():
    state = merged(*vpc.vpc(), *PGW)
    (pgw,) = state.private_gateways
    assert (str(pgw.ip), pgw.prefix, pgw.device, str(pgw.gateway), pgw.source_nat) == \
        ("10.80.5.2", 24, "eth4", "10.80.5.1", False)
    assert "eth4" not in state.public_devices() and all(p.device != "eth4" for p in state.public_ips)
    assert addresses.render(state).addresses["eth4"] == (pgw.interface,)
    assert state.network_acl("eth4").ingress[0].cidrs == (IPv4Network("10.70.1.0/24"),)
    # add: false releases it (by address), and nothing else.
    gone = merged(vpc.ips(vpc.private_gateway_entry(add=False)), state=state)
    assert gone.private_gateways == () and gone.public_ips == state.public_ips


def test_private_gateway_errors_name_their_json_paths():
    errors = errors_of(*vpc.vpc(), vpc.ips(vpc.private_gateway_entry(nic_dev_id=2)))
    assert "ips.json.4:$.ip_address[0].nic_dev_id: eth2 is a tier's NIC, not a private gateway's" in errors, errors
    errors = errors_of(*vpc.vpc(), vpc.ips(vpc.private_gateway_entry(public_ip="10.70.9.2", gateway="10.70.9.1")))
    assert any(e.startswith("ips.json.4:$.ip_address[0].public_ip: the private gateway's network 10.70.9.0/24 "
                            "overlaps the VPC's CIDR") for e in errors), errors
    errors = errors_of(*vpc.vpc(), vpc.ips(vpc.private_gateway_entry(gateway="10.80.6.1")))
    assert errors == ["ips.json.4:$.ip_address[0].gateway: 10.80.6.1 is no other host of the private gateway's "
                      "network 10.80.5.0/24"]
    errors = errors_of(*vpc.vpc(), vpc.ips(vpc.private_gateway_entry(gateway="10.80.5.2")))
    assert errors == ["ips.json.4:$.ip_address[0].gateway: the router as the private network's own gateway "
                      "is not supported yet"]


def test_static_routes_are_keyed_by_network_and_revoked_ones_removed():
    state = merged(*vpc.vpc(), *PGW, vpc.static_routes(vpc.static_route(), vpc.static_route("192.0.2.0/24")))
    assert [str(r.network) for r in state.static_routes] == ["10.90.0.0/16", "192.0.2.0/24"]
    assert sorted(map(str, addresses.render(state).static_routes)) == [
        "10.90.0.0/16 via 10.80.5.1 dev eth4 proto 77 table 254", "192.0.2.0/24 via 10.80.5.1 dev eth4 proto 77 table 254"]
    # A changed next hop replaces the route (the incumbent keeps the old one); revoke removes it.
    state = merged(vpc.static_routes(vpc.static_route("192.0.2.0/24", "10.80.5.9"),
                                     vpc.static_route(revoke=True)), state=state)
    assert [(str(r.network), str(r.gateway)) for r in state.static_routes] == [("192.0.2.0/24", "10.80.5.9")]
    # A next-hop route (no ip_address) via a tier's host is fine too.
    state = merged(vpc.static_routes(vpc.static_route("198.18.0.0/15", "10.70.2.254", ip_address=None)), state=state)
    assert "198.18.0.0/15 via 10.70.2.254 dev eth3 proto 77 table 254" in map(str, addresses.render(state).static_routes)
    # Its private gateway gone, a route is kept but not rendered until the next hop is back.
    gone = merged(vpc.ips(vpc.private_gateway_entry(add=False)), state=state)
    assert [str(r) for r in addresses.render(gone).static_routes] == [
        "198.18.0.0/15 via 10.70.2.254 dev eth3 proto 77 table 254"]


def test_static_route_errors_name_their_json_paths():
    path = "staticroutes.json.6:$.routes"
    errors = errors_of(*vpc.vpc(), *PGW, vpc.static_routes(
        vpc.static_route("0.0.0.0/0"), vpc.static_route("bad"), vpc.static_route("10.90.0.0/16", revoke="no"),
        {"revoke": False, "network": "10.91.0.0/16"}))
    assert errors == [f"{path}[0].network: a static route cannot be the default route",
                      f"{path}[1].network: 'bad' is not a CIDR",
                      f"{path}[2].revoke: expected true or false, got 'no'",
                      f"{path}[3].gateway: is required"]
    errors = errors_of(*vpc.vpc(), *PGW, vpc.static_routes(
        vpc.static_route("10.70.8.0/24"), vpc.static_route("203.0.113.0/24", "10.80.6.1"),
        vpc.static_route("198.51.100.0/25"), vpc.static_route("192.0.2.0/24", ip_address="10.80.5.7")))
    assert sorted(errors) == [
        f"{path}[0].network: 10.70.8.0/24 overlaps the VPC's CIDR 10.70.0.0/16",
        f"{path}[1].gateway: 10.80.6.1 is no next hop on a private gateway's network or a tier of this router",
        f"{path}[2].network: 198.51.100.0/25 overlaps 198.51.100.0/24 of public NIC eth1",
        f"{path}[3].ip_address: 10.80.5.7 is no private gateway of this router",
    ]
    errors = errors_of(vpc.cmdline(type="router"), vpc.static_routes())
    assert errors == ["staticroutes.json.1:$.routes[0].network: static routes are for VPC routers "
                      "(cmdline type vpcrouter)"]


def test_private_gateways_and_static_routes_round_trip_through_the_state_document():
    state = merged(*vpc.vpc(), vpc.ips(vpc.private_gateway_entry(source_nat=True)), vpc.private_gateway_acl(),
                   vpc.static_routes(vpc.static_route(), vpc.static_route("198.18.0.0/15", "10.70.2.254", ip_address=None)))
    assert state_doc.loads(state_doc.dumps(state)) == state
    assert state_doc.load_trusted(state_doc.dumps(state)) == state
    jsonschema.validate(state_doc.to_document(state), SCHEMA)
    assert "private_gateways" not in state_doc.to_document(merged(*vpc.vpc()))
