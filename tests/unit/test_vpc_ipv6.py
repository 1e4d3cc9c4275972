"""Dual-stack VPC tiers (pure): the guestnetwork push's IPv6 fields as SetGuestNetworkConfigItem
sends them, their errors with JSON paths, the state document, and what they render to
(addresses, the IPv6 default route, radvd, the ip6tables ACLs, a pair's IPv6 gateway VIPs)."""

from __future__ import annotations

import json
from ipaddress import IPv6Address, IPv6Interface, IPv6Network

import jsonschema
import pytest

from vragent import engine
from vragent.subsystems.vrrp import model as redundancy, render as vrrp_render
from vragent.pipeline import document as state_doc
from vragent.errors import InvalidInput
from vragent.lab import sample_vpc as vpc
from vragent.model import RouterState, TierIpv6
from vragent.paths import Paths
from vragent.subsystems.network import render as addresses
from vragent.subsystems.ipv6 import rules as netfilter6, render as radvd
from vragent.pipeline.intake import Document, merge_documents

SCHEMA = json.loads(state_doc.SCHEMA_PATH.read_text())


def merged(*payloads: dict, state: RouterState | None = None) -> RouterState:
    docs = [Document(f"{p['type']}.json.{i}", json.loads(json.dumps(p))) for i, p in enumerate(payloads)]
    return merge_documents(state or RouterState(), docs)


def errors_of(*payloads: dict) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        merged(*payloads)
    return [f"{e.path}: {e.message}" for e in caught.value.errors]


def acls() -> list[dict]:
    return [vpc.network_acl(1, ingress=[vpc.acl_rule("tcp", 80), vpc.acl_rule("udp", 53, cidr="2001:db8:9::/48")]),
            vpc.network_acl(2, egress=[vpc.acl_rule("tcp", 8081, cidr="2001:db8:ff::1/128", allowed=False)])]


def test_a_dual_stack_tier_is_parsed_and_kept_in_the_state_document():
    state = merged(*vpc.dual_stack_vpc(), *acls())
    tier = state.vpc_ipv6_tiers()[0]
    assert tier.ipv6 == TierIpv6(IPv6Interface("2001:db8:71::1/64"), IPv6Address("2001:db8:71::1"),
                                 (IPv6Address("2001:db8:ff::1"),), IPv6Interface("2001:db8:ff::10/64"),
                                 IPv6Address("2001:db8:ff::1"))
    assert state.vpc_public6 == (IPv6Interface("2001:db8:ff::10/64"), IPv6Address("2001:db8:ff::1"))
    assert state.network_acl("eth2").ingress[1].cidrs == () and \
        state.network_acl("eth2").ingress[1].cidrs6 == (IPv6Network("2001:db8:9::/48"),)
    assert state_doc.loads(state_doc.dumps(state)) == state
    assert state_doc.load_trusted(state_doc.dumps(state)) == state
    jsonschema.validate(state_doc.to_document(state), SCHEMA)
    assert "ipv6" not in state_doc.to_document(merged(*vpc.vpc()))["guest_networks"][0]


@pytest.mark.parametrize("overrides, error", [
    ({"router_guest_ip6_cidr": "2001:db8:71::/56"},
     "guestnetwork.json.2:$.router_guest_ip6_cidr: 2001:db8:71::/56: guests configure themselves by SLAAC, "
     "which needs a /64"),
    ({"router_guest_ip6": "2001:db8:99::1"},
     "guestnetwork.json.2:$.router_guest_ip6: 2001:db8:99::1 is outside the tier's IPv6 network 2001:db8:71::/64"),
    ({"router_guest_ip6_cidr": ""},
     "guestnetwork.json.2:$.router_guest_ip6_cidr: is required with router_guest_ip6 (the tier's IPv6 network)"),
    ({"router_guest_ip6": "fe80::1"}, "guestnetwork.json.2:$.router_guest_ip6: fe80::1 is not a global unicast address"),
    ({"dns6": "2001:db8:ff::1,nope"}, "guestnetwork.json.2:$.dns6[1]: 'nope' is not an IPv6 address"),
    ({"router_ip6": "2001:db8:71::9"},
     "guestnetwork.json.2:$.router_ip6: the public IPv6 network 2001:db8:71::/64 overlaps the tier's 2001:db8:71::/64"),
])
def test_a_bad_ipv6_field_of_a_tier_is_refused_with_its_path(overrides, error):
    assert errors_of(vpc.cmdline(), vpc.ips(), {**vpc.dual_stack_guestnetwork(1), **overrides}) == [error]


def test_the_control_nic_of_a_vpc_has_no_ipv6():
    assert errors_of(vpc.cmdline(eth0ip6="2001:db8:5::1")) == [
        "cmdline.json.0:$.cmd_line.eth0ip6: a VPC router's eth0 is its control NIC, which has no IPv6"]
    assert merged(vpc.cmdline(eth1ip6="2001:db8:ff::10", eth1ip6prelen="64")).vpc_public6 is None


def test_a_dual_stack_vpc_renders_its_addresses_route_radvd_and_ip6tables_acls():
    state = merged(*vpc.dual_stack_vpc(), *acls())
    links = addresses.render(state)
    assert IPv6Interface("2001:db8:71::1/64") in links.addresses["eth2"]
    assert IPv6Interface("2001:db8:ff::10/64") in links.addresses["eth1"]
    assert links.default_route6 == (IPv6Address("2001:db8:ff::1"), "eth1")
    conf = radvd.config_text(state)
    assert "interface eth2" in conf and "prefix 2001:db8:72::/64" in conf and "RDNSS 2001:db8:ff::1" in conf
    chains = netfilter6.render(state)["filter6"].chains
    assert chains["vr-FORWARD"][-6:] == [
        "-A vr-FORWARD -s 2001:db8:71::/64 -i eth2 -j ACL_OUTBOUND_eth2",
        "-A vr-FORWARD -s 2001:db8:72::/64 -i eth3 -j ACL_OUTBOUND_eth3",
        "-A vr-FORWARD -d 2001:db8:71::/64 -o eth2 -j ACL_INBOUND_eth2",
        "-A vr-FORWARD -d 2001:db8:72::/64 -o eth3 -j ACL_INBOUND_eth3",
        "-A vr-FORWARD -s 2001:db8:71::/64 -i eth2 -o eth1 -j ACCEPT",
        "-A vr-FORWARD -s 2001:db8:72::/64 -i eth3 -o eth1 -j ACCEPT"]
    assert chains["ACL_INBOUND_eth2"] == ["-A ACL_INBOUND_eth2 -p tcp -m tcp --dport 80 -j ACCEPT",
                                          "-A ACL_INBOUND_eth2 -s 2001:db8:9::/48 -p udp -m udp --dport 53 -j ACCEPT",
                                          "-A ACL_INBOUND_eth2 -j DROP"]
    assert chains["ACL_OUTBOUND_eth3"] == ["-A ACL_OUTBOUND_eth3 -d 2001:db8:ff::1/128 -p tcp -m tcp --dport 8081 -j DROP"]
    assert chains["ACL_INBOUND_eth3"] == ["-A ACL_INBOUND_eth3 -j DROP"]
    # IPv4 only: no IPv6 table at all; losing IPv6 withdraws it.
    ipv4 = merged(*vpc.vpc())
    assert netfilter6.render(ipv4) == {} and netfilter6.withdrawn(state, ipv4) and not netfilter6.withdrawn(ipv4, state)


def test_a_vpc_pairs_tier_ipv6_gateways_are_the_primarys(tmp_path):
    ipv6 = {k: v for k, v in vpc.dual_stack_guestnetwork(1, router_ip6="2001:db8:71::3", gateway6="2001:db8:71::1")
            .items() if "ip6" in k or k in ("cidr6", "dns6")}
    state = merged(*vpc.pair_vpc(2), {**vpc.pair_guestnetwork(2, 1), **ipv6})
    assert vrrp_render.ipv6_gateway_vips(state) == [("eth2", IPv6Interface("2001:db8:71::1/64"))]
    primary = engine.render(state, Paths(tmp_path), role=redundancy.Role.PRIMARY, tables=False)
    backup = engine.render(state, Paths(tmp_path), role=redundancy.Role.BACKUP, tables=False)
    assert IPv6Interface("2001:db8:71::1/64") in primary.links.addresses["eth2"]
    assert IPv6Interface("2001:db8:71::1/64") not in backup.links.addresses["eth2"]
    assert IPv6Interface("2001:db8:71::3/64") in backup.links.addresses["eth2"]
    assert {d.service: d.standby for d in backup.daemons if d.enabled}["radvd"] is True
