"""A VPC router with a second public NIC (eth4, a further public VLAN plugged after the
tiers), proven with real TCP: port forwarding and static NAT on eth4's IPs are answered
out of eth4, a static-NAT VM egresses on eth4 as its public IP, the tiers' source NAT stays
on eth1, traffic between tiers never goes to a public gateway, VPC traffic that leaves by
eth4 is SNAT'ed to the VPC's source-NAT IP; and the usage counters vpc_netusage.sh prints
(NETWORK_STATS_ethN per public NIC) move with that traffic. Every apply converges.

The second upstream (up2, on eth4's segment) holds an "internet" host only it reaches: a
reply routed by the main table would go to eth1's upstream instead and be lost.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vragent.lab import sample, sample_vpc as vpc
from vragent.lab.agent import RouterAgent
from vragent.lab.topology import (PUBLIC_GATEWAY, SECOND_PUBLIC_GATEWAY, SECOND_PUBLIC_IPS,
                                  SECOND_UPSTREAM_SOURCE, SOURCE_NAT_IP, VPC_CIDR)
from vragent.lab.traffic import TcpServer, tcp_connect
from tests.lab.checks import apply_ok, policy

REPO = Path(__file__).resolve().parents[2]
VPC_NETUSAGE = ["sh", str(REPO / "packaging/vpc_netusage.sh")]  # netusage.sh under the VPC's name
TIER1, TIER2 = vpc.tier(1), vpc.tier(2)
PF_IP, NAT_IP = SECOND_PUBLIC_IPS[0], SECOND_PUBLIC_IPS[1]
TABLE, MARK = "104", "0x68"  # Table_eth4 and its mark: what operators grep


def public_ips(add: bool = True) -> dict:
    return vpc.ips(vpc.ip_entry(SOURCE_NAT_IP, source_nat=True), vpc.ip_entry(PF_IP, nic=4, add=add),
                   vpc.ip_entry(NAT_IP, nic=4, add=add, one_to_one_nat=True))


def eth4_rules(add: bool = True) -> list[dict]:
    return [sample.forward_rules(sample.forward_rule(PF_IP, 2222, TIER1.vm_ip, 22, revoke=not add)),
            sample.staticnat_rules(sample.staticnat_rule(NAT_IP, TIER2.vm_ip, revoke=not add))]


ACLS = [vpc.network_acl(1, ingress=[vpc.acl_rule("tcp", 22)]), vpc.network_acl(2, ingress=[vpc.acl_rule("tcp", 80)])]


def usage(lab, *args: str) -> list[int]:
    """vpc_netusage.sh's output, checked for the management server's format, as numbers."""
    output = lab.run("vr", [*VPC_NETUSAGE, *args]).stdout
    assert re.fullmatch(r"(\d+:){4}\n", output), output
    return [int(value) for value in output.rstrip(":\n").split(":")]


@pytest.fixture
def vpc2(make_lab, tmp_path):
    lab = make_lab(router_type="vpcrouter", tiers=2, second_public=True)
    agent = RouterAgent(lab, tmp_path / "root")
    apply_ok(agent, *vpc.vpc(), public_ips(), *ACLS, *eth4_rules())
    return lab, agent


def test_eth4_connections_are_answered_by_eth4_and_source_nat_stays_on_eth1(vpc2):
    lab, agent = vpc2
    assert policy(lab, TABLE) == ([f"1104 {MARK}", "1204 203.0.113.128"],
                                  ["9 10.70.1.0/24", "9 10.70.2.0/24", "9 169.254.0.0/16",  # 9: throw
                                   "9 203.0.113.128/25", "unicast default eth4"])
    assert policy(lab, "101")[0] == ["1101 0x65", "1201 198.51.100.0"]
    assert f"default via {PUBLIC_GATEWAY} dev eth1" in lab.run("vr", ["ip", "route"]).stdout
    assert lab.run("vr", ["sysctl", "-n", "net.ipv4.conf.eth4.rp_filter"]).stdout.strip() == "2"

    # Port forwarding on an eth4 IP, from beyond eth4's gateway: the reply leaves by eth4.
    with TcpServer(lab, "vm1", 22):
        forwarded = tcp_connect(lab, "up2", PF_IP, 2222, timeout=1.0, source=SECOND_UPSTREAM_SOURCE)
    assert forwarded.ok and forwarded.peer_seen == SECOND_UPSTREAM_SOURCE, forwarded.error

    # Static NAT on an eth4 IP: in from beyond eth4 (tier 2's ACL opens 80), and the VM's own
    # connections leave by eth4 as that IP; tier 1's source NAT never leaves by eth4.
    with TcpServer(lab, "vm2", 80):
        inbound = tcp_connect(lab, "up2", NAT_IP, 80, timeout=1.0, source=SECOND_UPSTREAM_SOURCE)
    assert inbound.ok and inbound.peer_seen == SECOND_UPSTREAM_SOURCE, inbound.error
    with TcpServer(lab, "up2", 8080, bind=SECOND_UPSTREAM_SOURCE):
        outbound = tcp_connect(lab, "vm2", SECOND_UPSTREAM_SOURCE, 8080, timeout=1.0)
        assert not tcp_connect(lab, "vm1", SECOND_UPSTREAM_SOURCE, 8080, timeout=0.5).ok
    assert outbound.ok and outbound.peer_seen == NAT_IP, outbound.error
    with TcpServer(lab, "up", 8080):
        assert tcp_connect(lab, "vm1", PUBLIC_GATEWAY, 8080).peer_seen == SOURCE_NAT_IP

    # Between tiers, even from the static-NAT VM (marked for eth4): routed directly, not NAT'ed.
    with TcpServer(lab, "vm1", 22):
        between = tcp_connect(lab, "vm2", TIER1.vm_ip, 22, timeout=1.0)
    assert between.ok and between.peer_seen == TIER2.vm_ip, between.error

    # What a tier sends out of eth4 otherwise (here to eth4's own segment) takes the VPC's
    # source-NAT IP (cmdline source_nat_ip), as on CloudStack; up2 stands for the datacenter
    # routing that IP back (by eth4, the way the packet came).
    lab.run("up2", ["ip", "route", "add", f"{SOURCE_NAT_IP}/32", "via", PF_IP])
    with TcpServer(lab, "up2", 8081):
        direct = tcp_connect(lab, "vm1", SECOND_PUBLIC_GATEWAY, 8081, timeout=1.0)
    assert direct.ok and direct.peer_seen == SOURCE_NAT_IP, direct.error

    # Revoking eth4's IPs (and their rules) takes its rules, its table and its counters away.
    apply_ok(agent, *eth4_rules(add=False), public_ips(add=False))
    assert policy(lab, TABLE) == ([], [])
    assert "eth4" not in agent.iptables_save()
    assert policy(lab, "101")[0] == ["1101 0x65", "1201 198.51.100.0"]  # eth1's stay


def test_vpc_netusage_counts_what_each_public_nic_carries_in_the_incumbent_format(vpc2):
    lab, agent = vpc2
    saved = agent.iptables_save()
    for device in ("eth1", "eth4"):  # the management server's pairs: sent, received, sent, received
        assert (f"-A NETWORK_STATS_{device} -s {VPC_CIDR} -o {device}\n"
                f"-A NETWORK_STATS_{device} -d {VPC_CIDR} -i {device}\n"
                f"-A NETWORK_STATS_{device} ! -s {VPC_CIDR} -o {device} -p tcp\n"
                f"-A NETWORK_STATS_{device} ! -d {VPC_CIDR} -i {device} -p tcp\n") in saved
        for builtin in ("INPUT", "FORWARD", "OUTPUT"):
            assert f"-A {builtin} -j NETWORK_STATS_{device}\n" in saved
    # -r zeroes the chain of the NIC holding the IP (the -l match is exact: "IP/").
    lab.run("vr", [*VPC_NETUSAGE, "-l", SOURCE_NAT_IP, "-r"])
    lab.run("vr", [*VPC_NETUSAGE, "-l", PF_IP, "-r"])
    assert usage(lab, "-l", SOURCE_NAT_IP, "-g") == [0, 0, 0, 0]

    # A tier's source NAT: sent and received on eth1, not on eth4.
    with TcpServer(lab, "up", 8080):
        assert tcp_connect(lab, "vm1", PUBLIC_GATEWAY, 8080).ok
    sent, received, router_sent, router_received = usage(lab, "-l", SOURCE_NAT_IP, "-g")
    assert sent > 0 and received > 0 and router_sent == router_received == 0
    assert usage(lab, "-l", PF_IP, "-g") == [0, 0, 0, 0]
    # The router's own TCP on eth1: the third and fourth counters.
    with TcpServer(lab, "up", 8080):
        assert tcp_connect(lab, "vr", PUBLIC_GATEWAY, 8080).ok
    eth1 = usage(lab, "-l", SOURCE_NAT_IP, "-g")
    assert eth1[:2] == [sent, received] and eth1[2] > 0 and eth1[3] > 0

    # Port forwarding in on eth4: received and sent (the reply) on eth4's chain.
    with TcpServer(lab, "vm1", 22):
        assert tcp_connect(lab, "up2", PF_IP, 2222, timeout=1.0, source=SECOND_UPSTREAM_SOURCE).ok
    eth4 = usage(lab, "-l", NAT_IP, "-g")  # any IP of the NIC names its chain
    assert eth4[0] > 0 and eth4[1] > 0

    # A changing push keeps the counters the management server bills from (cumulative).
    apply_ok(agent, vpc.network_acl(2, ingress=[vpc.acl_rule("tcp", 80), vpc.acl_rule("tcp", 443)]))
    assert usage(lab, "-l", SOURCE_NAT_IP, "-g")[:2] >= [sent, received]
    assert usage(lab, "-l", PF_IP, "-g")[:2] >= eth4[:2]

    # The rest of the calling convention: -n (VPN usage) prints nothing, -c -v and -d are no-ops.
    for args in (["-n", "-l", SOURCE_NAT_IP], ["-c", "-v", VPC_CIDR], ["-d"]):
        done = lab.run("vr", [*VPC_NETUSAGE, *args])
        assert done.returncode == 0 and done.stdout == "", args
    no_nic = lab.run("vr", [*VPC_NETUSAGE, "-g"], check=False)
    assert no_nic.returncode == 2 and "-l PUBLICIP" in no_nic.stderr
    unknown = lab.run("vr", [*VPC_NETUSAGE, "-l", "198.51.100.1", "-g"], check=False)
    assert unknown.returncode == 1 and "no NIC holds 198.51.100.1" in unknown.stderr


def test_bad_public_ips_on_a_vpc_are_refused_with_their_paths_and_nothing_changes(vpc2):
    lab, agent = vpc2
    before = agent.iptables_save()
    rules_before = lab.run("vr", ["ip", "rule"]).stdout
    bad = vpc.ips(vpc.ip_entry(SOURCE_NAT_IP, source_nat=True),
                  {**vpc.ip_entry(SECOND_PUBLIC_IPS[2], nic=4), "gateway": "203.0.113.300"},
                  {**vpc.ip_entry("198.51.100.30"), "nic_dev_id": 2})  # eth2 is tier 1
    result = agent.apply(bad)
    assert result.returncode == 2 and result.result["status"] == "invalid"
    messages = "\n".join(result.errors)
    assert ".ip_address[1].gateway: '203.0.113.300' is not an IPv4 address" in messages, messages
    assert agent.iptables_save() == before
    assert lab.run("vr", ["ip", "rule"]).stdout == rules_before
    assert SECOND_PUBLIC_IPS[2] not in lab.run("vr", ["ip", "-4", "addr"]).stdout
