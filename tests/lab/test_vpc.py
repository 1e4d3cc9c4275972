"""A VPC router (cmdline type vpcrouter), proven with real traffic: eth0 control (SSH 3922
only there), eth1 public with source NAT, eth2 and eth3 tiers with one VM each; DHCP, DNS
and the data server on each tier's router IP; tiers reach each other only as their network
ACLs allow (first match in order, ingress default DROP, egress default allow); every
apply converges (a second one changes nothing, as remembered and with --full)."""

from __future__ import annotations

import pytest

from vragent.lab import sample_vpc as vpc
from vragent.lab.agent import RouterAgent
from vragent.lab.dhcp import DhcpClient, dig
from vragent.lab.guestdata import metadata, password
from vragent.lab.topology import (CONTROL_ROUTER_IP, EXTRA_PUBLIC_IPS, PUBLIC_GATEWAY,
                                  SOURCE_NAT_IP, VPC_CIDR)
from vragent.lab.traffic import TcpServer, ping, tcp_connect
from tests.lab.checks import apply_ok, connects

TIER1, TIER2 = vpc.tier(1), vpc.tier(2)


@pytest.fixture
def vpc_lab(make_lab):
    return make_lab(router_type="vpcrouter", tiers=2)


@pytest.fixture
def router(vpc_lab, tmp_path) -> RouterAgent:
    agent = RouterAgent(vpc_lab, tmp_path / "root")
    apply_ok(agent, *vpc.vpc())
    return agent


def test_the_vpc_nic_layout_source_nat_and_ssh_on_the_control_nic_only(vpc_lab, router):
    lab = vpc_lab
    addresses = lab.run("vr", ["ip", "-4", "-br", "addr"]).stdout
    for device, address in (("eth0", f"{CONTROL_ROUTER_IP}/16"), ("eth1", f"{SOURCE_NAT_IP}/24"),
                            ("eth2", f"{TIER1.router_ip}/24"), ("eth3", f"{TIER2.router_ip}/24")):
        assert any(line.split()[0].split("@")[0] == device and address in line for line in addresses.splitlines()), addresses
    assert f"default via {PUBLIC_GATEWAY} dev eth1" in lab.run("vr", ["ip", "route"]).stdout
    saved = router.iptables_save()
    assert ":INPUT DROP" in saved and ":FORWARD DROP" in saved
    # Both tiers leave with the source-NAT IP.
    with TcpServer(lab, "up", 8080):
        for role in ("vm1", "vm2"):
            result = tcp_connect(lab, role, PUBLIC_GATEWAY, 8080)
            assert result.ok and result.peer_seen == SOURCE_NAT_IP, role
    # SSH 3922 from the control side only (eth0 on a VPC router).
    with TcpServer(lab, "vr", 3922):
        assert connects(lab, "ctl", CONTROL_ROUTER_IP, 3922)
        assert not connects(lab, "vm1", TIER1.router_ip, 3922)
        assert not connects(lab, "vm2", TIER2.router_ip, 3922)
        assert not connects(lab, "up", SOURCE_NAT_IP, 3922)
    assert ping(lab, "ctl", CONTROL_ROUTER_IP)


def test_each_tier_gets_dhcp_dns_and_the_data_server_on_its_own_router_ip(make_lab, tmp_path):
    lab = make_lab(router_type="vpcrouter", tiers=2, vm_static_addresses=False)
    router = RouterAgent(lab, tmp_path / "root")
    apply_ok(router, *vpc.vpc(), vpc.dhcp_entry(1, "web-01"), vpc.dhcp_entry(2, "db-01"))
    for role, tier, name in (("vm1", TIER1, "tier1"), ("vm2", TIER2, "tier2")):
        lease = DhcpClient(lab, role, tmp_path).obtain()
        assert lease.ip == tier.vm_ip, lease.log
        assert lease.options["new_routers"] == tier.router_ip
        assert lease.options["new_domain_name_servers"] == tier.router_ip
        assert lease.options["new_domain_name"] == f"{name}.{vpc.DOMAIN}"
        # The router answers names on its tier address; data-server is the tier's own address.
        assert dig(lab, role, tier.router_ip, "data-server") == [tier.router_ip]
        assert metadata(lab, role, tier.router_ip, "/latest/user-data")[0].status == 404
        assert password(lab, role, tier.router_ip, "send_my_password")[0].text == "saved_password"
    assert dig(lab, "vm2", TIER2.router_ip, f"web-01.tier1.{vpc.DOMAIN}") == [TIER1.vm_ip]
    # The data server answers each tier on its own router IP only.
    assert metadata(lab, "vm1", TIER2.router_ip, "/latest/user-data", timeout=1)[0].status is None
    # A DHCP-configured VM leaves with the source-NAT IP.
    with TcpServer(lab, "up", 8080):
        assert tcp_connect(lab, "vm2", PUBLIC_GATEWAY, 8080).peer_seen == SOURCE_NAT_IP


def test_an_ingress_acl_opens_exactly_tcp_22_from_tier_1_to_tier_2(vpc_lab, router):
    lab = vpc_lab
    with TcpServer(lab, "vm2", 22), TcpServer(lab, "vm2", 23), TcpServer(lab, "vm1", 22):
        # No ACL yet: a tier's ingress is closed, even from another tier of the VPC.
        assert not connects(lab, "vm1", TIER2.vm_ip, 22)
        apply_ok(router, vpc.network_acl(2, ingress=[vpc.acl_rule("tcp", 22, cidr=TIER1.cidr)]))
        assert connects(lab, "vm1", TIER2.vm_ip, 22)
        result = tcp_connect(lab, "vm1", TIER2.vm_ip, 22)
        assert result.peer_seen == TIER1.vm_ip  # routed between tiers, never NAT'ed
        assert not connects(lab, "vm1", TIER2.vm_ip, 23)
        assert not connects(lab, "vm2", TIER1.vm_ip, 22)  # the other direction stays closed
        assert not ping(lab, "vm1", TIER2.vm_ip)
        # The first match decides: a deny for vm1 ahead of the tier-wide allow.
        apply_ok(router, vpc.network_acl(2, ingress=[
            vpc.acl_rule("tcp", 22, cidr=f"{TIER1.vm_ip}/32", allowed=False),
            vpc.acl_rule("tcp", 22, cidr=TIER1.cidr)]))
        assert not connects(lab, "vm1", TIER2.vm_ip, 22)
        # ICMP echo only, from a list of CIDRs (each CIDR its own rule, in the listed order).
        apply_ok(router, vpc.network_acl(2, ingress=[
            vpc.acl_rule("icmp", icmp=(8, -1), cidr=f"192.0.2.0/24,{TIER1.cidr}"),
            vpc.acl_rule("tcp", (20, 30), cidr=vpc.ANY)]))
        assert ping(lab, "vm1", TIER2.vm_ip)
        assert connects(lab, "vm1", TIER2.vm_ip, 22) and connects(lab, "vm1", TIER2.vm_ip, 23)
        # Each push replaces the tier's whole ACL: absent rules are revoked.
        apply_ok(router, vpc.network_acl(2))
        assert not connects(lab, "vm1", TIER2.vm_ip, 22) and not ping(lab, "vm1", TIER2.vm_ip)


def test_egress_acls_allow_by_default_and_deny_what_they_list(vpc_lab, router):
    lab = vpc_lab
    apply_ok(router, vpc.network_acl(2, ingress=[vpc.acl_rule("tcp", 22, cidr=TIER1.cidr)]))
    with TcpServer(lab, "vm2", 22), TcpServer(lab, "up", 8080), TcpServer(lab, "up", 8081):
        # Tier 1's egress: tcp 22 to tier 2 denied; everything else still leaves.
        apply_ok(router, vpc.network_acl(1, egress=[vpc.acl_rule("tcp", 22, cidr=TIER2.cidr, allowed=False)]))
        assert not connects(lab, "vm1", TIER2.vm_ip, 22)
        assert connects(lab, "vm1", PUBLIC_GATEWAY, 8080)
        # A "default deny" list: allow 8080 to the upstream, then all/DROP.
        apply_ok(router, vpc.network_acl(1, egress=[vpc.acl_rule("tcp", 8080, cidr=f"{PUBLIC_GATEWAY}/32"),
                                                    vpc.acl_rule("all", allowed=False)]))
        assert connects(lab, "vm1", PUBLIC_GATEWAY, 8080)
        assert not connects(lab, "vm1", PUBLIC_GATEWAY, 8081)
        assert not connects(lab, "vm1", TIER2.vm_ip, 22)
        assert connects(lab, "vm2", PUBLIC_GATEWAY, 8081)  # tier 2 is not affected
        apply_ok(router, vpc.network_acl(1))
        assert connects(lab, "vm1", PUBLIC_GATEWAY, 8081) and connects(lab, "vm1", TIER2.vm_ip, 22)


def test_a_bad_acl_is_refused_with_its_paths_and_nothing_changes(vpc_lab, router):
    before = router.iptables_save()
    bad = vpc.network_acl(2, ingress=[vpc.acl_rule("tcp", (30, 20)), {**vpc.acl_rule("tcp", 22), "cidr": "10.0.0.0/33"},
                                      vpc.acl_rule("sctp"), {**vpc.acl_rule("icmp"), "icmp_code": 0}],
                          egress=[{"type": "udp", "first_port": 53, "last_port": 53, "cidr": "0.0.0.0/0"}])
    result = router.apply(bad)
    assert result.returncode == 2 and result.result["status"] == "invalid"
    messages = "\n".join(result.errors)
    for expected in (".ingress_rules[0].last_port: 20 is below first_port 30",
                     ".ingress_rules[1].cidr[0]: '10.0.0.0/33' is not a CIDR",
                     ".ingress_rules[2].type: 'sctp' is not one of",
                     ".ingress_rules[3].icmp_code: 0 needs an icmp_type",
                     ".egress_rules[0].allowed: is required"):
        assert expected in messages, messages
    result = router.apply({**vpc.network_acl(1), "device": "eth5"})
    assert result.returncode == 2 and "eth5" in result.errors[0]
    assert router.iptables_save() == before


def test_removing_a_tier_removes_its_address_and_its_acl_chains(vpc_lab, router):
    lab = vpc_lab
    apply_ok(router, vpc.network_acl(2, ingress=[vpc.acl_rule("tcp", 22, cidr=TIER1.cidr)]))
    assert "ACL_INBOUND_eth3" in router.iptables_save()
    apply_ok(router, vpc.guestnetwork(2, add=False))
    saved = router.iptables_save()
    assert "ACL_INBOUND_eth3" not in saved and "ACL_OUTBOUND_eth3" not in saved
    assert TIER2.router_ip not in lab.run("vr", ["ip", "-4", "addr", "show", "eth3"]).stdout
    assert "network_acls" not in router.show() or all(a["device"] != "eth3" for a in router.show()["network_acls"])
    with TcpServer(lab, "up", 8080):
        assert connects(lab, "vm1", PUBLIC_GATEWAY, 8080)


def test_port_forwarding_to_a_tier_vm_passes_that_tiers_ingress_acl(vpc_lab, router):
    from vragent.lab import sample

    lab = vpc_lab
    public = EXTRA_PUBLIC_IPS[0]
    apply_ok(router, vpc.ips(vpc.ip_entry(public)),
             sample.forward_rules(sample.forward_rule(public, 2222, TIER2.vm_ip, 22)))
    with TcpServer(lab, "vm2", 22):
        assert not connects(lab, "up", public, 2222)  # tier 2's ingress ACL is closed
        apply_ok(router, vpc.network_acl(2, ingress=[vpc.acl_rule("tcp", 22, cidr=vpc.ANY)]))
        result = tcp_connect(lab, "up", public, 2222)
        assert result.ok and result.peer_seen == PUBLIC_GATEWAY


def test_a_port_forward_with_source_cidrs_admits_only_those_sources(vpc_lab, router):
    """forwarding_rules.json's source_cidr_list (4.20+): on a VPC, where no firewall rule
    guards a public IP, the rule itself admits only its sources (the incumbent's -s)."""
    from vragent.lab import sample
    from vragent.lab.topology import UPSTREAM_SOURCES

    lab = vpc_lab
    allowed, other = UPSTREAM_SOURCES
    public = EXTRA_PUBLIC_IPS[0]
    apply_ok(router, vpc.ips(vpc.ip_entry(public)), vpc.network_acl(2, ingress=[vpc.acl_rule("tcp", 22, cidr=vpc.ANY)]),
             sample.forward_rules(sample.forward_rule(public, 2222, TIER2.vm_ip, 22,
                                                      source_cidrs=(f"{allowed}/32", "2001:db8:aa::/48"))))
    with TcpServer(lab, "vm2", 22):
        assert connects(lab, "up", public, 2222, source=allowed)
        assert not connects(lab, "up", public, 2222, source=other)
        # The same rule without CIDRs ("" on the wire): from anywhere.
        apply_ok(router, sample.forward_rules(sample.forward_rule(public, 2222, TIER2.vm_ip, 22)))
        assert connects(lab, "up", public, 2222, source=other)


def test_a_vpc_cmdline_is_validated_with_paths(make_lab, tmp_path):
    lab = make_lab(router_type="vpcrouter", tiers=1)
    router = RouterAgent(lab, tmp_path / "root")
    result = router.apply(vpc.cmdline(vpccidr="10.70.0.1/16", has_public_network="false"))
    assert result.returncode == 2
    messages = "\n".join(result.errors)
    assert "cmd_line.vpccidr: '10.70.0.1/16' has host bits set" in messages
    assert "cmd_line.has_public_network" in messages
    result = router.apply(vpc.cmdline(vpccidr="10.80.0.0/16"), vpc.ips(), vpc.guestnetwork(1))
    assert result.returncode == 2
    assert "is outside the VPC's CIDR 10.80.0.0/16" in "\n".join(result.errors)
    assert VPC_CIDR == "10.70.0.0/16"


def test_static_nat_maps_a_public_ip_to_a_tier_vm_both_ways(vpc_lab, router):
    from vragent.lab import sample

    lab = vpc_lab
    public = EXTRA_PUBLIC_IPS[1]
    apply_ok(router, vpc.ips(vpc.ip_entry(public, one_to_one_nat=True)),
             sample.staticnat_rules(sample.staticnat_rule(public, TIER1.vm_ip)),
             vpc.network_acl(1, ingress=[vpc.acl_rule("tcp", 80, cidr=f"{PUBLIC_GATEWAY}/32")]))
    with TcpServer(lab, "vm1", 80), TcpServer(lab, "vm1", 81), TcpServer(lab, "up", 8080):
        inbound = tcp_connect(lab, "up", public, 80)
        assert inbound.ok and inbound.peer_seen == PUBLIC_GATEWAY
        assert not connects(lab, "up", public, 81)  # not in tier 1's ingress ACL
        # The VM's own connections leave with its public IP; the other tier's with the source NAT IP.
        assert tcp_connect(lab, "vm1", PUBLIC_GATEWAY, 8080).peer_seen == public
        assert tcp_connect(lab, "vm2", PUBLIC_GATEWAY, 8080).peer_seen == SOURCE_NAT_IP


def test_a_batch_brings_up_a_whole_vpc_with_its_acls_in_one_transaction(vpc_lab, tmp_path):
    from vragent.lab import sample

    lab = vpc_lab
    router = RouterAgent(lab, tmp_path / "root")
    batch = sample.batch_cfg(sample.named(
        *vpc.vpc(), vpc.network_acl(2, ingress=[vpc.acl_rule("tcp", 22, cidr=TIER1.cidr)]),
        vpc.network_acl(1, egress=[vpc.acl_rule("all", cidr=f"{PUBLIC_GATEWAY}/32", allowed=False)])))
    apply_ok(router, batch)
    with TcpServer(lab, "vm2", 22), TcpServer(lab, "up", 8080):
        assert connects(lab, "vm1", TIER2.vm_ip, 22)
        assert not connects(lab, "vm1", PUBLIC_GATEWAY, 8080)
        assert tcp_connect(lab, "vm2", PUBLIC_GATEWAY, 8080).peer_seen == SOURCE_NAT_IP
