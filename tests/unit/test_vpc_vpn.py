"""Remote-access VPN on a VPC router: what the management server sends for a VPC
(public_interface eth1, local_cidr the VPC's CIDR) is served as on an isolated router."""

from __future__ import annotations

import json

import pytest

from vragent.errors import InvalidInput
from vragent.lab import sample, sample_vpc as vpc
from vragent.paths import Paths
from vragent.pipeline import netfilter
from vragent.subsystems.vpn import render as vpn
from vragent.pipeline.intake import Document, merge_documents
from vragent.model import RouterState

USERS = sample.vpn_users(("alice", "al1ce-Pw9", True))


def merged(*payloads):
    docs = [Document(f"{p['type']}.json.{i}", json.loads(json.dumps(p))) for i, p in enumerate(payloads)]
    return merge_documents(RouterState(), docs)


def test_a_vpc_routers_vpn_is_kept_and_rendered_with_its_openings():
    state = merged(*vpc.vpc(), vpc.remote_access_vpn(), USERS)
    assert state.remote_access_vpn.public_interface == "eth1"
    assert vpn.enabled(state)
    assert "local_addrs = 198.51.100.10" in vpn.swanctl_conf(state)
    # DNS for the clients: the first tier's router address, inside local_cidr (the VPC).
    assert f"ms-dns {vpc.tier(1).router_ip}" in vpn.ppp_options(state).splitlines()
    daemons = [vpn.strongswan_daemon(state, Paths.from_root("/r")), vpn.xl2tpd_daemon(state, Paths.from_root("/r"))]
    assert all(d.enabled for d in daemons)
    filter_ = netfilter.render(state)["filter"]
    assert "-A vr-INPUT -j vr-vpn" in filter_.chains["vr-INPUT"]
    assert "-A vr-vpn -d 198.51.100.10/32 -i eth1 -p esp -j ACCEPT" in filter_.chains["vr-vpn"]
    forward = filter_.chains["vr-FORWARD"]
    # Clients reach a tier through its ingress ACL (the tier's own jump), tiers reach them.
    assert "-A vr-FORWARD -d 10.70.1.0/24 -o eth2 -j ACL_INBOUND_eth2" in forward
    assert "-A vr-FORWARD -s 10.70.1.0/24 -i eth2 -o ppp+ -j ACCEPT" in forward
    assert "-A vr-FORWARD -i ppp+ -o ppp+ -m iprange --src-range 10.1.2.2-10.1.2.8 -j ACCEPT" in forward
    assert not any("-i ppp+ -o eth1" in rule for rule in forward)  # not out to the internet


def test_the_vpn_on_a_vpc_must_sit_on_a_public_ip_of_its_public_nic():
    wrong_nic = vpc.remote_access_vpn() | {"public_interface": "eth2"}
    with pytest.raises(InvalidInput) as caught:
        merged(*vpc.vpc(), wrong_nic)
    assert [e.path for e in caught.value.errors] == ["remoteaccessvpn.json.4:$.public_interface"]
    with pytest.raises(InvalidInput) as caught:
        merged(*vpc.vpc(), vpc.remote_access_vpn(public_ip="198.51.100.99"))
    assert [e.path for e in caught.value.errors] == ["remoteaccessvpn.json.4:$.vpn_server_ip"]


def test_a_vpn_is_still_refused_on_a_shared_networks_router():
    with pytest.raises(InvalidInput) as caught:
        merged(sample.shared_cmdline(), sample.remote_access_vpn())
    assert any(e.path.endswith("$.vpn_server_ip") and "isolated and VPC routers only" in e.message
               for e in caught.value.errors)
