"""Policy routing for a second public NIC, proven with real TCP: a connection that comes in on
eth3 is answered out of eth3, a static-NAT VM on an eth3 IP egresses on eth3, source NAT stays
on eth2, and revoking eth3's IPs takes its rules and table away.

The second upstream (up2, on eth3's segment) holds an "internet" host only it reaches: a
reply routed by the main table would go to eth2's upstream instead and be lost.
"""

from __future__ import annotations

import json

import pytest

from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.topology import (PUBLIC_GATEWAY, SECOND_PUBLIC_IPS, SECOND_UPSTREAM_SOURCE, SOURCE_NAT_IP,
                                  VM1_IP, VM2_IP)
from vragent.lab.traffic import TcpServer, tcp_connect
from tests.lab.checks import apply_ok, policy

PF_IP, NAT_IP = SECOND_PUBLIC_IPS[0], SECOND_PUBLIC_IPS[1]
TABLE, MARK = "103", "0x67"  # Table_eth3, its mark: what operators grep


def second_nic_ips(add: bool = True) -> dict:
    return sample.ips(sample.ip_entry(SOURCE_NAT_IP, source_nat=True),
                      sample.ip_entry(PF_IP, nic=3, add=add), sample.ip_entry(NAT_IP, nic=3, add=add))


def eth3_rules(add: bool = True) -> list[dict]:
    return [sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22, revoke=not add)),
            sample.staticnat_rules(sample.staticnat_rule(NAT_IP, VM2_IP, revoke=not add)),
            sample.firewall_rules(sample.firewall_rule(40, ports=2222, public_ip=PF_IP, revoked=not add),
                                  sample.firewall_rule(41, ports=80, public_ip=NAT_IP, revoked=not add))]


@pytest.fixture
def router(make_lab, tmp_path):
    lab = make_lab(second_public=True)
    agent = RouterAgent(lab, tmp_path / "root")
    apply_ok(agent, sample.cmdline(), second_nic_ips(), sample.egress_allowed(), *eth3_rules())
    return lab, agent


def test_eth3_traffic_leaves_by_eth3_and_goes_with_its_ips(router):
    lab, agent = router
    rules, routes = policy(lab, TABLE)
    assert rules == [f"1103 {MARK}", "1203 203.0.113.128"]
    assert sorted(routes) == ["9 169.254.0.0/16", "9 192.0.2.0/24", "9 203.0.113.128/25",
                              "unicast default eth3"]
    # Loose reverse-path filtering: strict would drop what is DNAT'ed in from eth3 (the check
    # looks the client up without the mark, in main, and finds eth2).
    assert lab.run("vr", ["sysctl", "-n", "net.ipv4.conf.eth3.rp_filter"]).stdout.strip() == "2"

    # Port forwarding on an eth3 IP, from beyond eth3's gateway: the reply goes back out of eth3.
    with TcpServer(lab, "vm1", 22):
        forwarded = tcp_connect(lab, "up2", PF_IP, 2222, timeout=1.0, source=SECOND_UPSTREAM_SOURCE)
    assert forwarded.ok and forwarded.peer_seen == SECOND_UPSTREAM_SOURCE, forwarded.error

    # Static NAT on an eth3 IP: in from beyond eth3, and the VM's own connections out by eth3 as that IP.
    with TcpServer(lab, "vm2", 80):
        inbound = tcp_connect(lab, "up2", NAT_IP, 80, timeout=1.0, source=SECOND_UPSTREAM_SOURCE)
    assert inbound.ok, inbound.error
    with TcpServer(lab, "up2", 8080, bind=SECOND_UPSTREAM_SOURCE):
        outbound = tcp_connect(lab, "vm2", SECOND_UPSTREAM_SOURCE, 8080, timeout=1.0)
        # Source NAT stays on eth2: a VM without static NAT never leaves by eth3.
        assert not tcp_connect(lab, "vm1", SECOND_UPSTREAM_SOURCE, 8080, timeout=0.5).ok
    assert outbound.ok and outbound.peer_seen == NAT_IP, outbound.error
    with TcpServer(lab, "up", 8080):
        assert tcp_connect(lab, "vm1", PUBLIC_GATEWAY, 8080).peer_seen == SOURCE_NAT_IP

    # Revoking eth3's IPs (and their rules) takes the rules, the table and the marks away.
    apply_ok(agent, *eth3_rules(add=False), second_nic_ips(add=False))
    assert policy(lab, TABLE) == ([], [])
    assert "eth3" not in agent.iptables_save()
    rules = json.loads(lab.run("vr", ["ip", "-N", "-j", "rule"]).stdout)
    assert [r["table"] for r in rules if 1100 <= r["priority"] < 1300] == ["102", "102"]  # eth2's stay


def test_foreign_rules_and_tables_survive_and_a_dry_run_shows_route_changes(router):
    lab, agent = router
    lab.run("vr", ["ip", "rule", "add", "priority", "1150", "fwmark", "0x1", "lookup", "50"])
    lab.run("vr", ["ip", "route", "add", "throw", "10.9.0.0/16", "table", "50"])
    lab.run("vr", ["ip", "route", "del", "default", "table", TABLE])  # drift in an owned table
    dry = agent.apply(sample.cmdline(), dry_run=True)
    assert {"kind": "route", "summary": f"route + default via 203.0.113.129 dev eth3 table {TABLE}",
            "status": "planned"} in dry.steps
    assert "route + default via 203.0.113.129 dev eth3 table 103" in agent.dry_run_text(sample.cmdline())
    apply_ok(agent, sample.cmdline())
    assert "unicast default eth3" in policy(lab, TABLE)[1]
    assert "1150:\tfrom all fwmark 0x1 lookup 50" in lab.run("vr", ["ip", "rule"]).stdout
    assert "throw 10.9.0.0/16" in lab.run("vr", ["ip", "route", "show", "table", "50"]).stdout
