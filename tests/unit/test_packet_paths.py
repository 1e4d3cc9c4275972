"""What a packet does in the rendered ruleset, proved in milliseconds by the tracer
(packet_trace.py), between the goldens (what is written) and the lab (real, slower).

The routers are the golden cases' own pushes, so a trace and a golden never disagree about the
router they describe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit import pushes as p
from tests.unit.packet_trace import Packet, UnknownRule, trace
from vragent.model import RouterState
from vragent.pipeline import netfilter
from vragent.pipeline.intake import Document, merge_documents

GOLDEN = Path(__file__).parent / "golden_router"
INTERNET, OTHER = "203.0.113.10", "203.0.113.20"


def tables_of(pushes: list) -> dict:
    return netfilter.render(merge_documents(RouterState(), [Document(name, payload) for name, payload in pushes]))


def golden_tables(case: str) -> dict:
    return tables_of(json.loads((GOLDEN / f"{case}.json").read_text())["pushes"])


@pytest.fixture(scope="module")
def isolated() -> dict:
    """Port 2222 on .20 forwarded to VM1's 22 and opened to the internet; .21 static NAT to VM2."""
    return tables_of([
        ["cmd_line.json", p.cmdline()],
        ["ips.json", p.ips(p.public_ip("198.51.100.10", source_nat=True, first=True), p.public_ip("198.51.100.20"),
                           p.public_ip("198.51.100.21"))],
        ["firewall.json", p.firewall(p.ingress(5, "198.51.100.20", ports=(2222, 2222)),
                                     p.ingress(6, "198.51.100.21", ports=(80, 80), cidrs=(f"{OTHER}/32",)))],
        ["forwards.json", p.forwards(p.forward("198.51.100.20", "2222", "192.0.2.11", "22"))],
        ["static_nat.json", p.static_nat("198.51.100.21", "192.0.2.12")],
    ])


def test_port_2222_on_a_public_ip_reaches_the_vms_port_22(isolated):
    path = trace(isolated, Packet(INTERNET, "198.51.100.20", "tcp", 2222, into="eth2", out="eth0"))
    assert path.accepted and path.dnat == ("192.0.2.11", 22) and path.snat is None
    assert any("vr-pf-198.51.100.20" in step for step in path.path)


def test_a_forwarded_ip_drops_the_ports_its_firewall_does_not_open(isolated):
    path = trace(isolated, Packet(INTERNET, "198.51.100.20", "tcp", 2223, into="eth2", out="eth0"))
    assert path.verdict == "DROP" and path.decided_by.startswith("mangle vr-fw-198.51.100.20")


def test_static_nat_admits_only_the_sources_its_rule_names(isolated):
    allowed = trace(isolated, Packet(OTHER, "198.51.100.21", "tcp", 80, into="eth2", out="eth0"))
    assert allowed.accepted and allowed.dnat == ("192.0.2.12", 80)
    refused = trace(isolated, Packet(INTERNET, "198.51.100.21", "tcp", 80, into="eth2", out="eth0"))
    assert refused.verdict == "DROP"


def test_a_static_nat_vm_leaves_by_its_own_public_ip_and_others_by_the_source_nat_ip():
    allow_all = [["cmd_line.json", p.cmdline()],
                 ["ips.json", p.ips(p.public_ip("198.51.100.10", source_nat=True, first=True), p.public_ip("198.51.100.21"))],
                 ["egress.json", p.firewall(p.egress(1, "all", default_allow=True))],
                 ["static_nat.json", p.static_nat("198.51.100.21", "192.0.2.12")]]
    tables = tables_of(allow_all)
    assert trace(tables, Packet("192.0.2.12", INTERNET, "tcp", 443, into="eth0", out="eth2")).snat == "198.51.100.21"
    assert trace(tables, Packet("192.0.2.11", INTERNET, "tcp", 443, into="eth0", out="eth2")).snat == "198.51.100.10"


def test_egress_is_closed_until_the_system_egress_rule_opens_it():
    closed = tables_of([["cmd_line.json", p.cmdline()],
                        ["ips.json", p.ips(p.public_ip("198.51.100.10", source_nat=True, first=True))]])
    path = trace(closed, Packet("192.0.2.11", INTERNET, "tcp", 443, into="eth0", out="eth2"))
    assert path.verdict == "DROP" and path.decided_by.startswith("filter vr-egress")


def test_egress_rules_on_a_default_allow_network_drop_exactly_what_they_name():
    tables = golden_tables("router__egress_default_allow")
    egress = tables["filter"].chains["vr-egress"]
    dropped = [rule for rule in egress if rule.endswith("-j DROP") and "--dport" in rule]
    assert dropped, egress  # the case has a port rule: it is what makes this test mean something
    port = int(dropped[0].split("--dport ")[1].split()[0].split(":")[0])
    assert trace(tables, Packet("192.0.2.11", INTERNET, "tcp", port, into="eth0", out="eth2")).verdict == "DROP"
    assert trace(tables, Packet("192.0.2.11", INTERNET, "udp", 5353, into="eth0", out="eth2")).accepted


def test_management_ssh_only_on_the_control_nic(isolated):
    assert trace(isolated, Packet("169.254.0.1", "169.254.1.10", "tcp", 3922, into="eth1")).accepted
    on_public = trace(isolated, Packet(INTERNET, "198.51.100.10", "tcp", 3922, into="eth2"))
    assert on_public.verdict == "DROP"


def test_guests_reach_dns_and_the_data_server_but_not_ssh(isolated):
    assert trace(isolated, Packet("192.0.2.11", "192.0.2.1", "udp", 53, into="eth0")).accepted
    assert trace(isolated, Packet("192.0.2.11", "192.0.2.1", "tcp", 80, into="eth0")).accepted
    assert trace(isolated, Packet("192.0.2.11", "192.0.2.1", "tcp", 3922, into="eth0")).verdict == "DROP"


def test_a_guest_reaching_a_forward_by_its_public_ip_is_hairpinned_through_the_router(isolated):
    path = trace(isolated, Packet("192.0.2.12", "198.51.100.20", "tcp", 2222, into="eth0", out="eth0"))
    assert path.accepted and path.dnat == ("192.0.2.11", 22) and path.snat == "192.0.2.1"


def test_established_replies_pass_even_where_new_connections_are_dropped(isolated):
    reply = Packet(INTERNET, "198.51.100.10", "tcp", 40000, into="eth2", out="eth0", state="ESTABLISHED")
    assert trace(isolated, reply).accepted


def test_a_vpc_tiers_acls_admit_and_drop_as_pushed():
    tables = golden_tables("router__vpc_two_tiers_acls_nat")
    # Tier 1's egress ACL denies all: even ssh to tier 2, which tier 2's ingress ACL admits from tier 1.
    blocked = trace(tables, Packet("10.70.1.11", "10.70.2.11", "tcp", 22, into="eth2", out="eth3"))
    assert blocked.verdict == "DROP" and blocked.decided_by.startswith("mangle ACL_OUTBOUND_eth2")
    # Tier 2's egress ACL: DNS to the resolver allowed, the rest of 198.51.100.0/24 denied, else allowed.
    dns = trace(tables, Packet("10.70.2.11", "198.51.100.1", "udp", 53, into="eth3", out="eth1"))
    assert dns.accepted and dns.snat == "198.51.100.10"
    denied = trace(tables, Packet("10.70.2.11", "198.51.100.5", "tcp", 80, into="eth3", out="eth1"))
    assert denied.decided_by.startswith("mangle ACL_OUTBOUND_eth3")
    assert trace(tables, Packet("10.70.2.11", "192.0.2.99", "tcp", 443, into="eth3", out="eth1")).accepted
    # Tier 1 admits nothing in; the port forward into tier 2 still passes tier 2's ingress ACL,
    # which admits ssh from tier 1 only.
    assert trace(tables, Packet("10.70.2.11", "10.70.1.11", "tcp", 22, into="eth3", out="eth2")).verdict == "DROP"
    forwarded = trace(tables, Packet(INTERNET, "198.51.100.20", "tcp", 2222, into="eth1", out="eth3"))
    assert forwarded.dnat == ("10.70.2.11", 22) and forwarded.decided_by.startswith("filter ACL_INBOUND_eth3")


def test_a_shared_network_router_forwards_nothing():
    tables = golden_tables("shared__dhcpsrvr_cmdline_only")
    path = trace(tables, Packet("192.0.2.11", INTERNET, "tcp", 443, into="eth0", out="eth0"))
    assert path.verdict == "DROP" and path.decided_by == "filter FORWARD policy DROP"


def test_a_rule_the_tracer_does_not_understand_is_an_error_not_a_pass():
    tables = tables_of([["cmd_line.json", p.cmdline()]])
    tables["filter"].chains["vr-INPUT"].insert(0, "-A vr-INPUT -m hashlimit --hashlimit-above 5/sec -j DROP")
    with pytest.raises(UnknownRule):
        trace(tables, Packet("192.0.2.11", "192.0.2.1", "udp", 53, into="eth0"))
