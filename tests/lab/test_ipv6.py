"""A dual-stack isolated network, proven with real traffic: guests configure themselves
from the router's advertisements (radvd, SLAAC), reach upstream with their own addresses
(routed, no NAT), ingress to the guest /64 is dropped until an ipv6firewallrules rule
opens exactly its port, and egress follows the offering's default and its rules."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import time

import pytest

from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.topology import ROUTER_GUEST_MAC, UPSTREAM_IP6, VM1_MAC
from vragent.lab.traffic import TcpServer, tcp_connect


def slaac_address(prefix: str, mac: str) -> str:
    """The modified EUI-64 address (RFC 4291 appendix A) a NIC takes in a /64 prefix."""
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    groups = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return str(ipaddress.IPv6Address(prefix + ":".join(groups)))


VM1_IP6 = slaac_address("2001:db8:1:0:", VM1_MAC)
ROUTER_LINK_LOCAL = slaac_address("fe80::", ROUTER_GUEST_MAC)


@pytest.fixture
def lab(make_lab):
    return make_lab(ipv6=True)


@pytest.fixture
def router(lab, tmp_path) -> RouterAgent:
    agent = RouterAgent(lab, tmp_path / "root")
    applied = agent.apply(sample.cmdline(ipv6=True), sample.ips())
    assert applied.returncode == 0, (applied.errors, applied.stderr)
    return agent


def ip6tables_save(lab) -> str:
    """The router's IPv6 ruleset without comments or policy counters (the router itself
    sends router advertisements and neighbour discovery all the time)."""
    text = lab.run("vr", ["ip6tables-save"]).stdout
    return "".join(re.sub(r" \[\d+:\d+\]$", " [0:0]", line) + "\n"
                   for line in text.splitlines() if not line.startswith("#"))


def apply_ok(router: RouterAgent, *payloads) -> None:
    """Apply, then prove convergence both as remembered and with --full."""
    first = router.apply(*payloads)
    assert first.returncode == 0, (first.errors, first.stderr)
    before = ip6tables_save(router.lab), router.iptables_save()
    remembered, full = router.reapply(*payloads)
    for again in (remembered, full):
        assert again.returncode == 0, again.errors
        assert again.result["status"] == "unchanged", again.steps
    # The ip6tables commit was counted in the ruleset generation, so the tables are still
    # trusted as verified: only --full reads them (iptables-save and ip6tables-save).
    assert full.result["forks"] == remembered.result["forks"] + 2
    assert (ip6tables_save(router.lab), router.iptables_save()) == before


def wait_for_slaac(lab, timeout: float = 5.0) -> tuple[set[str], str | None]:
    """vm1's global addresses and IPv6 default gateway, once it has both (or the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        addresses = {info["local"] for entry in json.loads(lab.run("vm1", ["ip", "-j", "-6", "addr"]).stdout)
                     for info in entry.get("addr_info", []) if info.get("scope") == "global"}
        routes = json.loads(lab.run("vm1", ["ip", "-j", "-6", "route", "show", "default"]).stdout)
        gateway = routes[0].get("gateway") if routes else None
        if (addresses and gateway) or time.monotonic() > deadline:
            return addresses, gateway
        time.sleep(0.1)


def connects(lab, role, dst, port) -> bool:
    return tcp_connect(lab, role, dst, port, timeout=1.0).ok


def test_a_guest_takes_a_slaac_address_and_reaches_upstream_with_it(lab, router):
    addresses, gateway = wait_for_slaac(lab)
    # The router answers the guest's router solicitation at once (the incumbent dropped it).
    assert addresses == {VM1_IP6}
    assert gateway == ROUTER_LINK_LOCAL
    with TcpServer(lab, "up", 8080, bind="::"):
        result = tcp_connect(lab, "vm1", UPSTREAM_IP6, 8080)
    assert result.ok, result.error
    assert result.peer_seen == VM1_IP6  # routed: the upstream sees the guest's own address
    apply_ok(router, sample.cmdline(ipv6=True), sample.ips())


def test_ingress_to_the_guest_network_opens_exactly_the_allowed_port(lab, router):
    wait_for_slaac(lab)
    with TcpServer(lab, "vm1", 8022, bind="::"), TcpServer(lab, "vm1", 8023, bind="::"):
        assert not connects(lab, "up", VM1_IP6, 8022)  # ingress: default drop
        apply_ok(router, sample.ipv6_firewall_rules(
            sample.ipv6_firewall_rule(1201, "tcp", 8022, source_cidrs=("2001:db8:ff::/64",)),
            sample.ipv6_system_egress_rule(1188, default_allow=True)))
        result = tcp_connect(lab, "up", VM1_IP6, 8022)
        assert result.ok and result.peer_seen == UPSTREAM_IP6
        assert not connects(lab, "up", VM1_IP6, 8023)
        # Revoked, it closes again.
        apply_ok(router, sample.ipv6_firewall_rules(sample.ipv6_firewall_rule(1201, "tcp", 8022, revoked=True)))
        assert not connects(lab, "up", VM1_IP6, 8022)


def test_egress_default_deny_with_one_allow_opens_exactly_that_port(lab, router):
    wait_for_slaac(lab)
    with TcpServer(lab, "up", 8080, bind="::"), TcpServer(lab, "up", 8081, bind="::"):
        assert connects(lab, "vm1", UPSTREAM_IP6, 8081)  # the default: egress allowed
        apply_ok(router, sample.ipv6_firewall_rules(
            sample.ipv6_system_egress_rule(1188, default_allow=False),
            sample.ipv6_firewall_rule(1190, "tcp", 8080, source_cidrs=(), traffic_type="Egress",
                                      default_egress_policy=False)))
        assert connects(lab, "vm1", UPSTREAM_IP6, 8080)
        assert not connects(lab, "vm1", UPSTREAM_IP6, 8081)


# radvd that accepts every configuration but cannot start: the failure comes after the
# ip6tables commit, so that commit must be rolled back.
BROKEN_RADVD = """#!/bin/sh
case "$*" in *--configtest*) exit 0 ;; esac
echo "injected failure" >&2
exit 1
"""


def test_turning_ipv6_on_is_rolled_back_whole_when_radvd_will_not_start(lab, tmp_path):
    agent = RouterAgent(lab, tmp_path / "root")
    assert agent.apply(sample.cmdline(), sample.ips()).returncode == 0
    injector = tmp_path / "bin"
    injector.mkdir()
    (injector / "radvd").write_text(BROKEN_RADVD)
    (injector / "radvd").chmod(0o755)
    agent.env = {"PATH": f"{injector}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
    result = agent.apply(sample.cmdline(ipv6=True), sample.ips())
    assert result.returncode == 1, result.steps
    assert any(s["kind"] == "iptables" and s["summary"].startswith("ip6tables") and s["status"] == "rolled back"
               for s in result.steps), result.steps
    # As before: no IPv6 rule or chain (an empty filter table with ACCEPT policies, where
    # the kernel had not loaded one), no global IPv6 address.
    assert [line for line in ip6tables_save(lab).splitlines()
            if line not in ("*filter", "COMMIT") and not line.endswith(" ACCEPT [0:0]")] == []
    assert lab.run("vr", ["ip", "-6", "addr", "show", "scope", "global"]).stdout == ""
    assert "eth0ip6" not in agent.show()["cmdline"]


def test_render_6_prints_the_ipv6_tables_as_ip6tables_restore_input(lab, router, tmp_path):
    rendered = router.run("render", "-6").stdout
    assert rendered.startswith("*filter\n") and "-A vr-INPUT" in rendered and rendered.endswith("COMMIT\n")
    # Exactly what runs: restored into an empty namespace, it reads back as the router's vr- chains.
    scratch = f"{lab.prefix}-r6"
    subprocess.run(["ip", "netns", "add", scratch], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", scratch, "ip6tables-restore", "-w"], input=rendered, text=True,
                       check=True)
        restored = subprocess.run(["ip", "netns", "exec", scratch, "ip6tables-save"], capture_output=True,
                                  text=True, check=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", scratch], check=False)
    ours = lambda text: sorted(line for line in text.splitlines() if line.startswith("-A vr-"))  # noqa: E731
    assert ours(restored) == ours(ip6tables_save(lab)) != []
    assert RouterAgent(lab, tmp_path / "v4-only").run("render", "-6").stdout == ""


def test_ipv6_leaving_the_cmdline_removes_addresses_route_radvd_and_chains(lab, router):
    """The cmdline loses its IPv6 keys: the router's IPv6 addresses, its IPv6 default route,
    radvd and every vragent chain of the IPv6 filter table go (INPUT and FORWARD stay
    closed); IPv4 is untouched; and the next apply changes nothing."""
    apply_ok(router, sample.ipv6_firewall_rules(sample.ipv6_firewall_rule(5, ports=80)))
    assert "vr-INPUT" in ip6tables_save(lab) and (router.root / "run/vragent/radvd.pid").exists()
    ipv4 = router.iptables_save()

    removed = router.apply(sample.cmdline())
    assert removed.returncode == 0, removed.errors
    summaries = [s["summary"] for s in removed.steps]
    assert any(s.startswith("radvd: stop") for s in summaries), summaries
    addresses = json.loads(lab.run("vr", ["ip", "-j", "-6", "addr"]).stdout)
    assert [info["local"] for entry in addresses for info in entry.get("addr_info", [])
            if info.get("scope") == "global"] == []
    assert lab.run("vr", ["ip", "-6", "route", "show", "default"]).stdout.strip() == ""
    assert ip6tables_save(lab) == "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    assert not (router.root / "run/vragent/radvd.pid").exists()
    assert router.iptables_save() == ipv4
    for again in router.reapply(sample.cmdline()):
        assert again.returncode == 0 and again.result["status"] == "unchanged", again.steps
    # And back: IPv6 returns whole.
    apply_ok(router, sample.cmdline(ipv6=True))
    assert "vr-INPUT" in ip6tables_save(lab)
    assert lab.run("vr", ["ip", "-6", "route", "show", "default"]).stdout.startswith(f"default via {UPSTREAM_IP6}")
