"""site2sitevpn: parsed as the management server sends it, validated with JSON paths, merged
per peer, persisted with its key kept secret, rendered into the shared charon's swanctl.conf
and into vragent's own iptables chains."""

from __future__ import annotations

import json

import pytest

from vragent import redact
from vragent.pipeline import document as state_doc
from vragent.errors import InvalidInput
from vragent.lab import sample_vpc as vpc
from vragent.model import RouterState
from vragent.pipeline import netfilter
from vragent.subsystems.vpn import site2site, render as vpn
from vragent.subsystems.vpn import service as strongswan
from vragent.pipeline.intake import Document, merge_documents
from vragent.subsystems.vpn.site2sitevpn import proposal_problem, proposals


def merged(*payloads) -> RouterState:
    return merge_documents(RouterState(), [Document(f"p{i}.json", p) for i, p in enumerate(payloads)])


def errors_of(*payloads) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        merged(*payloads)
    return [f"{e.path}: {e.message}" for e in caught.value.errors]


def test_the_management_servers_payload_becomes_one_connection_per_peer():
    state = merged(*vpc.vpc(), vpc.site2sitevpn(cidrs="203.0.113.0/25, 203.0.113.128/26", dpd=True, encap=True,
                                                ike_version="ikev1", esp_lifetime="1800"))
    (conn,) = state.site_to_site_vpns
    assert str(conn.peer) == vpc.S2S_PEER and str(conn.local_cidr) == vpc.VPC_CIDR
    assert [str(c) for c in conn.peer_cidrs] == ["203.0.113.0/25", "203.0.113.128/26"]
    assert (conn.dpd, conn.encap, conn.passive, conn.ike_version, conn.esp_lifetime) == (True, True, False, "ikev1", 1800)
    assert conn.name == "vpn-198-51-100-1" and vpc.S2S_PSK not in repr(conn)


def test_cloudstack_policies_become_strongswan_proposals():
    assert proposals("aes128-sha1;modp1536") == ["aes128-sha1-modp1536"]
    assert proposals("aes256-sha256,aes128-sha1;modp2048") == ["aes256-sha256-modp2048", "aes128-sha1-modp2048"]
    assert proposals("aes128-sha1") == ["aes128-sha1"]
    assert proposal_problem("AES128-SHA1;MODP1536") is None
    assert "3des" in proposal_problem("3des-md5;modp1024")
    assert "ecp256" in proposal_problem("aes128-sha1;ecp256")
    assert "hash" in proposal_problem("aes128")


def test_a_push_replaces_its_peer_only_and_create_false_removes_it():
    second = vpc.site2sitevpn(peer=vpc.S2S_SECOND_PEER, cidrs=vpc.S2S_SECOND_CIDR)
    state = merged(*vpc.vpc(), vpc.site2sitevpn(), second, vpc.site2sitevpn(psk="n3w-Key"))
    assert [str(v.peer) for v in state.site_to_site_vpns] == [vpc.S2S_SECOND_PEER, vpc.S2S_PEER]
    assert {str(v.peer): v.preshared_key for v in state.site_to_site_vpns}[vpc.S2S_PEER] == "n3w-Key"
    gone = merged(*vpc.vpc(), vpc.site2sitevpn(), second, vpc.site2sitevpn(peer=vpc.S2S_SECOND_PEER, create=False))
    assert [str(v.peer) for v in gone.site_to_site_vpns] == [vpc.S2S_PEER]
    # The incumbent stored a create=false for an unknown peer and configured it; here nothing happens.
    assert merged(*vpc.vpc(), vpc.site2sitevpn(create=False)).site_to_site_vpns == ()


@pytest.mark.parametrize("overrides, path, message", [
    ({"ike_policy": "3des-sha1;modp1024"}, "ike_policy", "cipher '3des' is not supported"),
    ({"esp_policy": "aes128-sha1;modp768"}, "esp_policy", "DH group 'modp768'"),
    ({"peer_guest_cidr_list": "10.70.9.0/24"}, "peer_guest_cidr_list", "overlaps the VPC 10.70.0.0/16"),
    ({"peer_guest_cidr_list": "198.51.100.128/25"}, "peer_guest_cidr_list", "overlaps the public network"),
    ({"peer_guest_cidr_list": "not-a-cidr"}, "peer_guest_cidr_list", "not-a-cidr"),
    ({"local_public_ip": "198.51.100.99"}, "local_public_ip", "is not a public IP of this router"),
    ({"local_guest_cidr": "10.71.0.0/16"}, "local_guest_cidr", "is not this VPC's CIDR"),
    ({"ike_lifetime": 30}, "ike_lifetime", "30 is outside 60"),
    ({"ike_version": "ikev3"}, "ike_version", "'ikev3' is not one of"),
    ({"ipsec_psk": ""}, "ipsec_psk", "is empty"),
    ({"dpd": "maybe"}, "dpd", "expected true or false"),
])
def test_bad_input_names_its_json_path(overrides, path, message):
    errors = errors_of(*vpc.vpc(), vpc.site2sitevpn(**overrides))
    assert any(f":$.{path}: " in e and message in e for e in errors), errors
    assert all(vpc.S2S_PSK not in e for e in errors)


def test_site_to_site_is_for_vpc_routers_and_peer_networks_do_not_overlap():
    from vragent.lab import sample

    errors = errors_of(sample.cmdline(), sample.ips(), vpc.site2sitevpn())
    assert any(".peer_gateway_ip: " in e and "VPC routers only" in e for e in errors), errors
    errors = errors_of(*vpc.vpc(), vpc.site2sitevpn(),
                       vpc.site2sitevpn(peer=vpc.S2S_SECOND_PEER, cidrs="203.0.113.64/26"))
    assert any("overlaps the CIDRs of peer" in e for e in errors), errors


def test_the_state_keeps_the_connections_and_masks_the_key_when_shown():
    state = merged(*vpc.vpc(), vpc.site2sitevpn(split_connections=True, cidrs="203.0.113.0/26,203.0.113.64/26"))
    text = state_doc.dumps(state)
    doc = json.loads(text)
    assert doc["site_to_site_vpns"][0]["preshared_key"] == vpc.S2S_PSK
    assert state_doc.load_trusted(text).site_to_site_vpns == state.site_to_site_vpns
    native = merged(doc)
    assert native.site_to_site_vpns == state.site_to_site_vpns
    assert vpc.S2S_PSK not in redact.secrets_hidden(text)
    assert vpc.S2S_PSK not in redact.secrets_hidden(json.dumps(vpc.site2sitevpn()))


def test_swanctl_conf_holds_one_connection_per_peer_and_split_children():
    state = merged(*vpc.vpc(), vpc.site2sitevpn(split_connections=True, cidrs="203.0.113.0/26,203.0.113.64/26",
                                                passive=True, dpd=True),
                   vpc.site2sitevpn(peer=vpc.S2S_SECOND_PEER, cidrs=vpc.S2S_SECOND_CIDR, psk="0ther"))
    conf = vpn.swanctl_conf(state)
    assert "l2tp-psk" not in conf
    assert conf.count("remote_addrs = ") == 2 and "vpn-198-51-100-1-0 {" in conf and "vpn-198-51-100-1-1 {" in conf
    assert "remote_ts = 203.0.113.0/26\n" in conf and "start_action = none" in conf and "start_action = trap" in conf
    assert "dpd_action = restart" in conf and "id-peer = 192.0.2.200" in conf and 'secret = "0ther"' in conf
    assert vpn.strongswan_daemon(state, __import__("vragent.paths", fromlist=["Paths"]).Paths.from_root("/")).enabled


def test_iptables_openings_and_nat_bypass_come_before_source_nat():
    state = merged(*vpc.vpc(), vpc.site2sitevpn())
    tables = netfilter.render(state)
    assert tables["filter"].chains[site2site.INPUT_CHAIN] == [
        f"-A vr-s2s -s {vpc.S2S_PEER}/32 -d 198.51.100.10/32 -i eth1 -p udp -m udp --dport 500 -j ACCEPT",
        f"-A vr-s2s -s {vpc.S2S_PEER}/32 -d 198.51.100.10/32 -i eth1 -p udp -m udp --dport 4500 -j ACCEPT",
        f"-A vr-s2s -s {vpc.S2S_PEER}/32 -d 198.51.100.10/32 -i eth1 -p esp -j ACCEPT"]
    nat = tables["nat"]
    assert nat.jumps["POSTROUTING"] == ["-A POSTROUTING -j vr-s2s-nonat", "-A POSTROUTING -j vr-snat"]
    assert nat.chains[site2site.NONAT_CHAIN] == [f"-A vr-s2s-nonat -s 10.70.0.0/16 -d {vpc.S2S_PEER_CIDR} -o eth1 -j ACCEPT"]
    # The usage counters see everything first; then non-IPsec peer traffic is dropped, before vr-FORWARD.
    assert tables["filter"].jumps["FORWARD"] == ["-A FORWARD -j NETWORK_STATS_eth1", "-A FORWARD -j vr-s2s-fwd",
                                                 "-A FORWARD -j vr-FORWARD"]
    assert tables["filter"].chains[site2site.FORWARD_CHAIN] == [
        f"-A vr-s2s-fwd -s 10.70.0.0/16 -d {vpc.S2S_PEER_CIDR} -m policy --dir out --pol none -j DROP",
        f"-A vr-s2s-fwd -s {vpc.S2S_PEER_CIDR} -d 10.70.0.0/16 -m policy --dir in --pol none -j DROP"]
    bare = netfilter.render(merged(*vpc.vpc()))
    assert site2site.NONAT_CHAIN not in bare["nat"].chains and site2site.INPUT_CHAIN not in bare["filter"].chains
    assert site2site.FORWARD_CHAIN not in bare["filter"].chains


def test_checkbatchs2svpn_answers_per_peer_in_the_incumbents_format():
    sas = {"vpn-198-51-100-1": "vpn-198-51-100-1: #1, ESTABLISHED, IKEv2, 1234_i 5678_r*\n"}
    line = strongswan.s2s_status_line([vpc.S2S_PEER, "192.0.2.200"], lambda name: sas.get(name, ""))
    assert line == ("198.51.100.1:0:IPsec SA found;Site-to-site VPN have connected&"
                    "192.0.2.200:11:IPsec SA not found;Site-to-site VPN have not connected&")
    assert [len(part.split(":")) for part in line.split("&") if part] == [3, 3]


def test_the_state_section_matches_the_schema_and_native_errors_name_its_keys():

    import jsonschema

    state = merged(*vpc.vpc(), vpc.site2sitevpn(dpd=True))
    doc = state_doc.to_document(state)
    schema = json.loads(state_doc.SCHEMA_PATH.read_text())
    jsonschema.validate(doc, schema)
    doc["site_to_site_vpns"][0]["ike_policy"] = "3des-md5"
    doc["site_to_site_vpns"][0]["peer_cidrs"] = ["nope"]
    errors = errors_of(doc)
    assert any(".site_to_site_vpns[0].ike_policy: cipher '3des'" in e for e in errors), errors
    assert any(".site_to_site_vpns[0].peer_cidrs: " in e for e in errors), errors
