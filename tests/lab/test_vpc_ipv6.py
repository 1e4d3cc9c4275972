"""A dual-stack VPC, proven with real traffic: each tier's VM configures itself by SLAAC from
the router's advertisements in its own /64, reaches the upstream IPv6 host with its own
address (routed, never NAT'ed), and each tier's networkacl admits and drops IPv6 as pushed;
the tiers' IPv6 goes with them; every apply converges."""

from __future__ import annotations

import ipaddress
import json
import time

import pytest

from vragent.lab import sample_vpc as vpc
from vragent.lab.agent import RouterAgent
from vragent.lab.topology import UPSTREAM_IP6
from vragent.lab.traffic import TcpServer, tcp_connect
from tests.lab.test_ipv6 import ip6tables_save, slaac_address

TIER1, TIER2 = vpc.tier(1), vpc.tier(2)
ANY6 = "::/0"


def vm_ip6(number: int) -> str:
    return slaac_address(vpc.tier6(number).split("/")[0], vpc.tier(number).vm_mac)


def acls() -> list[dict]:
    """Tier 1: ingress tcp 80 from anywhere (v4 and v6), egress open. Tier 2: no ingress
    rule (closed), egress: tcp 8081 to the upstream host denied, the rest allowed."""
    return [vpc.network_acl(1, ingress=[vpc.acl_rule("tcp", 80)], egress=[vpc.acl_rule("all")]),
            vpc.network_acl(2, egress=[vpc.acl_rule("tcp", 8081, cidr=f"{UPSTREAM_IP6}/128", allowed=False),
                                       vpc.acl_rule("all")])]


def apply_ok(router: RouterAgent, *payloads):
    first = router.apply(*payloads)
    assert first.returncode == 0, (first.errors, first.stderr)
    before = ip6tables_save(router.lab), router.iptables_save()
    for again in router.reapply(*payloads):
        assert again.returncode == 0 and again.result["status"] == "unchanged", again.steps
    assert (ip6tables_save(router.lab), router.iptables_save()) == before
    return first


@pytest.fixture
def lab(make_lab):
    return make_lab(router_type="vpcrouter", tiers=2, ipv6=True)


@pytest.fixture
def router(lab, tmp_path) -> RouterAgent:
    agent = RouterAgent(lab, tmp_path / "root")
    apply_ok(agent, *vpc.dual_stack_vpc(), *acls())
    return agent


def slaac(lab, role: str, timeout: float = 8.0) -> tuple[set[str], str | None]:
    deadline = time.monotonic() + timeout
    while True:
        addresses = {info["local"] for entry in json.loads(lab.run(role, ["ip", "-j", "-6", "addr"]).stdout)
                     for info in entry.get("addr_info", []) if info.get("scope") == "global"}
        routes = json.loads(lab.run(role, ["ip", "-j", "-6", "route", "show", "default"]).stdout)
        gateway = routes[0].get("gateway") if routes else None
        if (addresses and gateway) or time.monotonic() > deadline:
            return addresses, gateway
        time.sleep(0.1)


def seen(lab, role: str, dst: str, port: int) -> str | None:
    result = tcp_connect(lab, role, dst, port, timeout=1.5)
    return result.peer_seen if result.ok else None


def test_each_tiers_vm_takes_a_slaac_address_in_its_own_prefix_and_reaches_upstream_with_it(lab, router):
    for number, role in ((1, "vm1"), (2, "vm2")):
        addresses, gateway = slaac(lab, role)
        assert addresses == {vm_ip6(number)} and ipaddress.IPv6Address(gateway).is_link_local, (role, addresses)
    with TcpServer(lab, "up", 8086, bind="::"):
        assert seen(lab, "vm1", UPSTREAM_IP6, 8086) == vm_ip6(1)
        assert seen(lab, "vm2", UPSTREAM_IP6, 8086) == vm_ip6(2)
    # The router: each tier's address, the public IPv6, the IPv6 default route, one radvd.
    shown = lab.run("vr", ["ip", "-6", "-br", "addr"]).stdout
    assert "2001:db8:71::1/64" in shown and "2001:db8:72::1/64" in shown and "2001:db8:ff::10/64" in shown
    assert lab.run("vr", ["ip", "-6", "route", "show", "default"]).stdout.startswith(f"default via {UPSTREAM_IP6}")
    assert "interface eth2" in (router.root / "etc/vragent/radvd.conf").read_text()
    assert "interface eth3" in (router.root / "etc/vragent/radvd.conf").read_text()


def test_ipv6_acls_admit_and_drop_as_pushed(lab, router):
    for role in ("vm1", "vm2"):
        slaac(lab, role)
    with TcpServer(lab, "vm1", 80, bind="::"), TcpServer(lab, "vm2", 80, bind="::"):
        assert seen(lab, "up", vm_ip6(1), 80) == UPSTREAM_IP6  # tier 1 admits tcp 80, routed
        assert seen(lab, "up", vm_ip6(2), 80) is None  # tier 2 has no ingress rule: dropped
        assert seen(lab, "vm1", vm_ip6(2), 80) is None  # nor from another tier
        assert seen(lab, "vm2", vm_ip6(1), 80) == vm_ip6(2)  # tier 1's ingress admits tier 2
    with TcpServer(lab, "up", 8081, bind="::"), TcpServer(lab, "up", 8082, bind="::"):
        assert seen(lab, "vm2", UPSTREAM_IP6, 8081) is None  # denied by tier 2's egress
        assert seen(lab, "vm2", UPSTREAM_IP6, 8082) == vm_ip6(2)
        assert seen(lab, "vm1", UPSTREAM_IP6, 8081) == vm_ip6(1)
    # A new push opens tier 2's port 80 for IPv6 only; IPv4 stays closed.
    apply_ok(router, vpc.network_acl(2, ingress=[vpc.acl_rule("tcp", 80, cidr=ANY6)]))
    with TcpServer(lab, "vm2", 80, bind="::"):
        assert seen(lab, "up", vm_ip6(2), 80) == UPSTREAM_IP6
    rules = router.iptables_save()
    assert "-A ACL_INBOUND_eth3 -p tcp -m tcp --dport 80 -j ACCEPT" not in rules


def test_a_tier_removed_takes_its_ipv6_along(lab, router):
    apply_ok(router, vpc.dual_stack_guestnetwork(2, add=False))
    shown = lab.run("vr", ["ip", "-6", "-br", "addr"]).stdout
    assert "2001:db8:72::1" not in shown and "2001:db8:71::1/64" in shown
    assert "interface eth3" not in (router.root / "etc/vragent/radvd.conf").read_text()
    assert "ACL_INBOUND_eth3" not in ip6tables_save(lab)


def test_tiers_losing_their_ipv6_take_the_vpcs_ipv6_along(lab, router):
    """The tiers' pushes come again without IPv6 (the offering lost it): the tiers' and the
    public IPv6 addresses, the IPv6 default route, radvd and every vragent chain of the IPv6
    filter table go; IPv4 is untouched; the next apply changes nothing."""
    ipv4 = router.iptables_save()
    removed = router.apply(vpc.guestnetwork(1), vpc.guestnetwork(2))
    assert removed.returncode == 0, removed.errors
    addresses = json.loads(lab.run("vr", ["ip", "-j", "-6", "addr"]).stdout)
    assert [info["local"] for entry in addresses for info in entry.get("addr_info", [])
            if info.get("scope") == "global"] == []
    assert lab.run("vr", ["ip", "-6", "route", "show", "default"]).stdout.strip() == ""
    assert ip6tables_save(lab) == "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    assert not (router.root / "run/vragent/radvd.pid").exists()
    assert router.iptables_save() == ipv4
    for again in router.reapply(vpc.guestnetwork(1), vpc.guestnetwork(2)):
        assert again.returncode == 0 and again.result["status"] == "unchanged", again.steps
