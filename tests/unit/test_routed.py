"""Routed networks (is_routed=true) and their BGP peers (bgp_peers.json): parsing with
JSON paths, what a routed router refuses, its rules, FRR's files, the state document."""

from __future__ import annotations

import json
import shutil
import subprocess

import jsonschema
import pytest

from vragent.pipeline import document as state_doc
from vragent.errors import InvalidInput
from vragent.lab import sample, sample_vpc as vpc
from vragent.model import RouterState
from vragent.paths import Paths
from vragent.redact import secrets_hidden
from vragent.subsystems.bgp import render as bgp
from vragent.pipeline import netfilter
from vragent.pipeline.intake import Document, merge_documents

SCHEMA = json.loads(state_doc.SCHEMA_PATH.read_text())
ROUTED = [sample.routed_cmdline(), sample.ips(), sample.guestnetwork()]
INGRESS_8080 = sample.routing_firewall_rule(11, "tcp", 8080, source_cidrs=("203.0.113.10/32",))
PEER = sample.bgp_peer(password=sample.BGP_PASSWORD, multihop=2)


def docs(*payloads):
    return [Document(f"{p['type']}.json.{i}", json.loads(json.dumps(p))) for i, p in enumerate(payloads)]


def merged(*payloads, state: RouterState | None = None) -> RouterState:
    return merge_documents(state or RouterState(), docs(*payloads))


def errors_of(*payloads) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        merged(*payloads)
    return [f"{e.path}: {e.message}" for e in caught.value.errors]


def test_a_routed_isolated_router_routes_without_nat_and_guards_the_guests():
    state = merged(*ROUTED, sample.firewall_rules(sample.system_egress_rule(True), INGRESS_8080),
                   sample.bgp_peers(PEER))
    rules = netfilter.render_restore(netfilter.render(state))
    assert "SNAT" not in rules and "DNAT" not in rules
    assert "vr-fw-" not in rules  # no public-IP firewall: there is no NAT behind it
    filter_ = netfilter.render(state)["filter"]
    forward = filter_.chains["vr-FORWARD"]
    assert forward.index("-A vr-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT") < \
        forward.index("-A vr-FORWARD -d 192.0.2.0/24 -o eth0 -j vr-ingress")
    assert filter_.chains["vr-ingress"] == [
        "-A vr-ingress -s 203.0.113.10/32 -p tcp -m tcp --dport 8080 -j ACCEPT", "-A vr-ingress -j DROP"]
    assert "-A vr-FORWARD -i eth0 -o eth2 -j vr-egress" in forward
    assert filter_.chains["vr-egress"] == ["-A vr-egress -j ACCEPT"]
    assert filter_.chains["vr-bgp"] == ["-A vr-bgp -s 198.51.100.1/32 -p tcp -m tcp --dport 179 -j ACCEPT"]


def test_the_same_router_unrouted_keeps_its_nat():
    state = merged(sample.cmdline(), sample.ips(), sample.guestnetwork())
    rules = netfilter.render_restore(netfilter.render(state))
    assert "-A vr-snat -o eth2 -j SNAT --to-source 198.51.100.10" in rules and "vr-ingress" not in rules


def test_nat_services_are_refused_on_a_routed_network_with_their_paths():
    errors = errors_of(*ROUTED, sample.forward_rules(sample.forward_rule(sample.SOURCE_NAT_IP, 22, "192.0.2.11", 22)),
                       sample.remote_access_vpn())
    assert any(e.startswith("forwardrules.json.3:$.rules[0]: port forwarding: a routed network has no NAT")
               for e in errors), errors
    assert any(e.startswith("remoteaccessvpn.json.4:$: remote-access VPN: a routed network") for e in errors), errors


def test_routing_firewall_rules_belong_to_routed_networks_only():
    errors = errors_of(sample.cmdline(), sample.ips(), sample.guestnetwork(), sample.firewall_rules(INGRESS_8080))
    assert errors == ["firewallrules.json.3:$.rules[0].src_ip: is required (an ingress rule without a public IP is "
                      "a routed network's, and this router's cmdline has no is_routed=true)"]
    errors = errors_of(*ROUTED, sample.firewall_rules(sample.firewall_rule(12, "tcp", 22)))
    assert errors[0].startswith("firewallrules.json.3:$.rules[0].src_ip: 198.51.100.10: a routed network has no "
                                "public-IP firewall")


def test_the_routed_flag_is_validated_and_a_shared_network_is_never_routed():
    bad = sample.cmdline()
    bad["cmd_line"]["is_routed"] = "maybe"
    assert errors_of(bad) == ["cmdline.json.0:$.cmd_line.is_routed: 'maybe' is neither true nor false"]
    shared = sample.shared_cmdline()
    shared["cmd_line"]["is_routed"] = "true"
    assert "cmdline.json.0:$.cmd_line.is_routed: a shared network's VR (dhcpsrvr) is never routed" in errors_of(shared)


def test_bgp_peers_are_parsed_as_the_management_server_sends_them():
    second = sample.bgp_peer(peer_id=2, ip4="198.51.100.2", peer_as=65002)
    state = merged(*ROUTED, sample.bgp_peers(second, PEER))
    assert [(p.peer_id, str(p.ip4), p.peer_as, p.network_as, str(p.guest_ip4_cidr)) for p in state.bgp_peers] == [
        (1, "198.51.100.1", 65001, 65100, "192.0.2.0/24"), (2, "198.51.100.2", 65002, 65100, "192.0.2.0/24")]
    assert state.bgp_peers[0].password == sample.BGP_PASSWORD and state.bgp_peers[0].ebgp_multihop == 2
    # Each push is the whole list: an empty one removes every peer.
    assert merged(sample.bgp_peers(), state=state).bgp_peers == ()


@pytest.mark.parametrize("peer, expected", [
    (sample.bgp_peer(peer_as=0), "$.peers[0].peer_as_number: 0 is outside 1..4294967295"),
    (sample.bgp_peer(network_as="x"), "$.peers[0].network_as_number: expected an integer, got 'x'"),
    (sample.bgp_peer(ip4="198.51.100.300"), "$.peers[0].ip4_address: '198.51.100.300' is not an IPv4 address"),
    (sample.bgp_peer(cidr="192.0.2.0/33"), "$.peers[0].guest_ip4_cidr:"),
    (sample.bgp_peer(password="has space"), "$.peers[0].peer_password: must be printable ASCII without spaces"),
    (sample.bgp_peer(multihop=0), "$.peers[0].details.EBGP_MultiHop: 0 is outside 1..255"),
    (sample.bgp_peer(ip4=None), "$.peers[0].ip4_address: a peer needs ip4_address with guest_ip4_cidr"),
    ({k: v for k, v in PEER.items() if k != "peer_id"}, "$.peers[0].peer_id: is required"),
])
def test_bad_peers_are_named_by_their_path_and_never_repeat_a_password(peer, expected):
    errors = errors_of(*ROUTED, sample.bgp_peers(peer))
    assert any(e.startswith(f"bgppeers.json.3:{expected}") for e in errors), errors
    assert not any("has space" in e for e in errors)


def test_one_as_for_the_router_and_one_as_per_neighbor():
    errors = errors_of(*ROUTED, sample.bgp_peers(PEER, sample.bgp_peer(peer_id=2, ip4="198.51.100.2", network_as=65200)))
    assert any(e.startswith("bgppeers.json.3:$.peers[1].network_as_number: 65200 differs from 65100") for e in errors)
    errors = errors_of(*ROUTED, sample.bgp_peers(PEER, sample.bgp_peer(peer_id=2, peer_as=65009)))
    assert any(e.startswith("bgppeers.json.3:$.peers[1].peer_as_number: 198.51.100.1 is AS 65001") for e in errors)
    errors = errors_of(*ROUTED, sample.bgp_peers(PEER, PEER))
    assert any(e.startswith("bgppeers.json.3:$.peers[1].peer_id: peer 1 for network 205 also appears") for e in errors)


def test_bgp_peers_need_a_routed_router():
    errors = errors_of(sample.cmdline(), sample.ips(), sample.guestnetwork(), sample.bgp_peers(PEER))
    assert errors == ["bgppeers.json.3:$.peers[0]: BGP peers need a routed network or VPC (cmdline is_routed=true; "
                      "dynamic routing is a ROUTED offering's)"]
    errors = errors_of(sample.shared_cmdline(), sample.bgp_peers(PEER))
    assert any(e.startswith("bgppeers.json.1:$.type: 'bgppeers' is refused on a dhcpsrvr router") for e in errors)


def test_frr_files_announce_the_guest_networks_to_the_peers():
    state = merged(*ROUTED, sample.bgp_peers(PEER))
    paths = Paths.from_root("/r")
    conf = bgp.bgpd_conf(state, paths).splitlines()
    for line in ("router bgp 65100", " bgp router-id 198.51.100.10", " no bgp ebgp-requires-policy",
                 " neighbor 198.51.100.1 remote-as 65001", f" neighbor 198.51.100.1 password {sample.BGP_PASSWORD}",
                 " neighbor 198.51.100.1 ebgp-multihop 2", " address-family ipv4 unicast", "  network 192.0.2.0/24",
                 "  neighbor 198.51.100.1 prefix-list vr-guests out",
                 "ip prefix-list vr-guests seq 5 permit 192.0.2.0/24"):
        assert line in conf, (line, conf)
    daemons = [bgp.zebra_daemon(state, paths), bgp.bgpd_daemon(state, paths)]
    assert [d.service for d in daemons] == ["frr-zebra", "frr-bgpd"] and all(d.enabled for d in daemons)
    assert daemons[1].files[bgp.BgpPaths(paths).bgpd_conf][1] == 0o600  # it holds the passwords
    off = merged(sample.bgp_peers(), state=state)
    assert not any(d.enabled for d in (bgp.zebra_daemon(off, paths), bgp.bgpd_daemon(off, paths)))


@pytest.mark.skipif(shutil.which("vtysh") is None, reason="FRR's vtysh is not installed (Debian package frr)")
def test_frr_accepts_the_files_it_is_given(tmp_path):
    peers = [PEER, sample.bgp_peer(peer_id=2, ip4=None, ip6="2001:db8::1", cidr6="2001:db8:1::/64")]
    state = merged(*ROUTED, sample.bgp_peers(*peers))
    for name, text in (("bgpd.conf", bgp.bgpd_conf(state, Paths.from_root(tmp_path))),
                       ("zebra.conf", bgp.zebra_conf(state, Paths.from_root(tmp_path)))):
        (tmp_path / name).write_text(text)
        done = subprocess.run(["vtysh", "--dryrun", "--inputfile", str(tmp_path / name)], capture_output=True, text=True)
        assert (done.returncode, done.stderr) == (0, ""), (name, done.stdout, done.stderr, text)
    (tmp_path / "bad.conf").write_text("router bgp 65100\n neighbor 198.51.100.1 remote-as\n")
    assert subprocess.run(["vtysh", "--dryrun", "--inputfile", str(tmp_path / "bad.conf")],
                          capture_output=True).returncode != 0


def test_peers_round_trip_through_the_state_document_and_masked_when_shown():
    state = merged(*ROUTED, sample.bgp_peers(PEER))
    doc = state_doc.to_document(state)
    jsonschema.validate(doc, SCHEMA)
    assert doc["bgp_peers"][0]["details"] == {"EBGP_MultiHop": "2"}
    assert state_doc.load_trusted(json.dumps(doc)).bgp_peers == state.bgp_peers
    assert merge_documents(RouterState(), [Document("mine.json", doc)]).bgp_peers == state.bgp_peers
    assert sample.BGP_PASSWORD not in secrets_hidden(json.dumps(doc))
    doc["bgp_peers"][0]["peer_as_number"] = -1
    with pytest.raises(InvalidInput) as caught:
        merge_documents(RouterState(), [Document("mine.json", doc)])
    assert [e.path for e in caught.value.errors] == ["mine.json:$.bgp_peers[0].peer_as_number"]


def test_a_routed_vpc_routes_its_tiers_and_drops_egress_no_rule_allows():
    cmdline = vpc.cmdline(is_routed="true")
    tier_peers = [sample.bgp_peer(network_id=200 + n, cidr=vpc.tier(n).cidr) for n in (1, 2)]
    state = merged(cmdline, vpc.ips(), vpc.guestnetwork(1), vpc.guestnetwork(2),
                   vpc.network_acl(1, egress=[vpc.acl_rule("tcp", 8080)]), sample.bgp_peers(*tier_peers))
    tables = netfilter.render(state)
    rules = netfilter.render_restore(tables)
    assert "SNAT" not in rules
    assert tables["mangle"].chains["ACL_OUTBOUND_eth2"][-2:] == [
        "-A ACL_OUTBOUND_eth2 -p tcp -m tcp --dport 8080 -j ACCEPT", "-A ACL_OUTBOUND_eth2 -j DROP"]
    assert tables["mangle"].chains["ACL_OUTBOUND_eth3"][-1] == "-A ACL_OUTBOUND_eth3 -j DROP"
    conf = bgp.bgpd_conf(state, Paths.from_root("/r")).splitlines()
    assert "  network 10.70.1.0/24" in conf and "  network 10.70.2.0/24" in conf
    assert " neighbor 198.51.100.1 remote-as 65001" in conf and conf.count(" neighbor 198.51.100.1 remote-as 65001") == 1
    # Unrouted, the same VPC NATs and allows what its egress ACL does not drop.
    plain = merged(vpc.cmdline(), vpc.ips(), vpc.guestnetwork(1), vpc.network_acl(1, egress=[vpc.acl_rule("tcp", 8080)]))
    assert netfilter.render(plain)["mangle"].chains["ACL_OUTBOUND_eth2"][-1] != "-A ACL_OUTBOUND_eth2 -j DROP"
    assert "-A vr-snat -o eth1 -j SNAT --to-source 198.51.100.10" in netfilter.render_restore(netfilter.render(plain))
