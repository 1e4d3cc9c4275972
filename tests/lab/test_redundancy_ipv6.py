"""A dual-stack redundant pair: the guests' IPv6 gateway (guestgw6) is the PRIMARY's alone
and only the PRIMARY advertises (radvd), before and after a failover; guests keep reaching
upstream over IPv6 with their own SLAAC address."""

from __future__ import annotations

import json
import time

import pytest

from vragent.lab import sample
from vragent.lab.redundancy import Pair, wait_until
from vragent.lab.topology import ROUTER_GUEST_IP6, UPSTREAM_IP6, VM1_MAC
from vragent.lab.traffic import TcpServer, tcp_connect
from tests.lab.test_ipv6 import slaac_address, wait_for_slaac

ADVERT_INT = 1
VM1_IP6 = slaac_address("2001:db8:1:0:", VM1_MAC)


def dual_stack_pushes(router: int, **cmdline_overrides: str) -> list[dict]:
    cmdline = sample.cmdline(router, redundant=True, ipv6=True)
    cmdline["cmd_line"].update(cmdline_overrides)
    return [cmdline, sample.ips(), sample.guestnetwork(router, redundant=True), sample.egress_allowed()]


@pytest.fixture
def pair(make_lab, tmp_path) -> Pair:
    pair = Pair(make_lab(routers=2, ipv6=True), tmp_path, advert_int=ADVERT_INT, pushes=dual_stack_pushes)
    pair.start()
    return pair


def guest_ipv6(pair: Pair, role: str) -> set[str]:
    entries = json.loads(pair.lab.run(role, ["ip", "-j", "-6", "addr", "show", "eth0"]).stdout)
    return {info["local"] for entry in entries for info in entry.get("addr_info", []) if info.get("scope") == "global"}


def ipv6_side(pair: Pair) -> None:
    """guestgw6 and radvd on the PRIMARY only; each router keeps its own guest address."""
    primary = pair.primary()
    backup = pair.other(primary)
    own = {"vr": sample.REDUNDANT_GUEST_IP6S[1], "vr2": sample.REDUNDANT_GUEST_IP6S[2]}
    assert guest_ipv6(pair, primary) == {own[primary], ROUTER_GUEST_IP6}
    assert guest_ipv6(pair, backup) == {own[backup]}
    assert pair.pid(primary, "radvd.pid") and pair.pid(backup, "radvd.pid") is None


def reaches_upstream6(pair: Pair) -> bool:
    with TcpServer(pair.lab, "up", 8086, bind="::"):
        result = tcp_connect(pair.lab, "vm1", UPSTREAM_IP6, 8086, timeout=2.0)
    return result.ok and result.peer_seen == VM1_IP6


def test_the_ipv6_gateway_and_radvd_follow_the_primary(pair):
    ipv6_side(pair)
    addresses, gateway = wait_for_slaac(pair.lab)
    assert VM1_IP6 in addresses and gateway, (addresses, gateway)
    assert reaches_upstream6(pair)
    for role, number in (("vr", 1), ("vr2", 2)):  # converged, the BACKUP included
        for again in pair.routers[role].reapply(*dual_stack_pushes(number, advert_int=str(ADVERT_INT))):
            assert again.returncode == 0 and again.result["status"] == "unchanged", (role, again.steps)

    old = pair.primary()
    pair.kill_keepalived(old)
    assert wait_until(lambda: pair.primary() == pair.other(old), 15), pair.statuses()
    assert wait_until(lambda: pair.role(old) == "BACKUP", 15), pair.statuses()
    time.sleep(1.0)
    ipv6_side(pair)
    # The old PRIMARY's radvd said goodbye (router lifetime 0) and the new one advertises:
    # the guest's traffic goes on through the new PRIMARY, with the same address.
    assert wait_until(lambda: reaches_upstream6(pair), 20), pair.lab.run("vm1", ["ip", "-6", "route"]).stdout


def test_a_pair_whose_ipv6_gateway_is_its_own_address_is_refused(pair):
    cmdline = sample.cmdline(1, redundant=True, ipv6=True)
    cmdline["cmd_line"]["guestgw6"] = cmdline["cmd_line"]["eth0ip6"]
    refused = pair.apply("vr", cmdline)
    assert refused.returncode == 2
    assert any(e.endswith("cmd_line.guestgw6: the IPv6 gateway 2001:db8:1::2 is this router's own guest address "
                          "(eth0ip6); on a redundant pair it is held by the PRIMARY only and must differ from each "
                          "router's own address") for e in refused.errors), refused.errors
