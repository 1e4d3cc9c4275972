"""NICs hot-plugged after boot, the way a hypervisor plugs them: they appear on a running
router administratively DOWN, without an address, and the push that configures each one
may come before the kernel sees it.

A VPC router boots with its control NIC only (VpcVirtualNetworkApplianceManagerImpl
takes its public NIC, tiers and private gateways out of the boot profile and plugs them
from finalizeCommandsOnStart: public NIC and its source-NAT IP, private gateway with its
IP and ACL, then each tier with its guest network); an isolated router's public NIC can
be plugged late too. The agent brings every NIC it configures up before its addresses
and routes are used, and waits (within a bound) for a NIC the push names that is not
there yet."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from vragent.lab import sample
from vragent.lab import sample_vpc as vpc
from vragent.lab.agent import RouterAgent
from vragent.lab.dhcp import dig
from vragent.lab.hotplug import PlugLater, plug
from vragent.lab.topology import (PGW_GATEWAY, PGW_REMOTE_HOST, PUBLIC_GATEWAY, SECOND_PUBLIC_IPS,
                                  SECOND_UPSTREAM_SOURCE, SOURCE_NAT_IP, VM1_IP)
from vragent.lab.traffic import TcpServer, tcp_connect
from tests.lab import checks

TIER1, TIER2 = vpc.tier(1), vpc.tier(2)
VPC_START_DIR = Path(__file__).resolve().parents[1] / "unit/wire_real/vpc_start"
VPC_START = json.loads((VPC_START_DIR / "sequence.json").read_text())
PLUG_DELAY = 1.0  # the NIC appears this long after its push arrived


def links(lab) -> dict[str, dict]:
    return {entry["ifname"]: entry for entry in json.loads(lab.run("vr", ["ip", "-j", "link", "show"]).stdout)}


def admin_up(lab, device: str) -> bool:
    return "UP" in links(lab)[device]["flags"]


def seen(lab, role, dst, port) -> str | None:
    result = tcp_connect(lab, role, dst, port, timeout=1.0)
    return result.peer_seen if result.ok else None


def apply_ok(router, *payloads):
    """Converges: routes and link states too."""
    return checks.apply_ok(router, *payloads, observe=lambda r: (
        r.lab.run("vr", ["ip", "-4", "route", "show", "table", "all"]).stdout,
        {name: "UP" in entry["flags"] for name, entry in links(r.lab).items()}))


def plugged_down(lab, device: str) -> None:
    plug(lab, device)
    assert not admin_up(lab, device), "a hot-plugged NIC appears DOWN"


@pytest.fixture
def hotplug_vpc(make_lab):
    return make_lab(router_type="vpcrouter", tiers=2, private_gateway=True,
                    hotplug=("eth1", "eth2", "eth3", "eth4"))


def test_a_vpc_router_whose_public_nic_tiers_and_private_gateway_are_hot_plugged(hotplug_vpc, tmp_path):
    """The router-start pushes of tests/unit/wire_real/vpc_start/ in their order, each NIC
    plugged (down) just before its push, the public NIC only a second after its push."""
    lab = hotplug_vpc
    router = RouterAgent(lab, tmp_path / "root")
    apply_ok(router, vpc.cmdline())
    assert set(links(lab)) == {"lo", "eth0"} and admin_up(lab, "eth0")

    for index, item in enumerate(VPC_START):
        push = VPC_START_DIR / item["file"]
        if index == 0:  # the public NIC's push arrives first; the NIC a second later
            later = PlugLater(lab, item["plug"], PLUG_DELAY)
            started = time.monotonic()
            try:
                apply_ok(router, push)
            finally:
                later.join()
            assert time.monotonic() - started >= PLUG_DELAY  # it waited for the NIC rather than refuse the push
            assert f"default via {PUBLIC_GATEWAY} dev eth1" in lab.run("vr", ["ip", "route"]).stdout
        else:
            if item["plug"]:
                plugged_down(lab, item["plug"])
            apply_ok(router, push)
        if item["plug"]:
            assert admin_up(lab, item["plug"]), item["step"]
    # The ACLs (their items are AclRule subclasses: lab samples rather than fixtures).
    apply_ok(router, vpc.private_gateway_acl(ingress=[vpc.acl_rule("tcp", 22, cidr=TIER1.cidr)]),
             vpc.network_acl(2, ingress=[vpc.acl_rule("tcp", 22, cidr=TIER1.cidr)]))
    assert all(admin_up(lab, device) for device in ("eth0", "eth1", "eth2", "eth3", "eth4"))
    routes = lab.run("vr", ["ip", "-4", "route", "show", "proto", "77"]).stdout
    assert "10.90.0.0/16 via 10.80.5.1 dev eth4" in routes and "10.91.0.0/16 via 10.80.5.1 dev eth4" in routes

    with TcpServer(lab, "up", 8080), TcpServer(lab, "vm2", 22), TcpServer(lab, "vm2", 23), \
            TcpServer(lab, "vm1", 22), TcpServer(lab, "pgw", 22):
        # Every tier reaches upstream with the source-NAT IP.
        assert seen(lab, "vm1", PUBLIC_GATEWAY, 8080) == SOURCE_NAT_IP
        assert seen(lab, "vm2", PUBLIC_GATEWAY, 8080) == SOURCE_NAT_IP
        # Tiers reach each other as their ACLs say: tier 2 admits tcp 22 from tier 1 only.
        assert seen(lab, "vm1", TIER2.vm_ip, 22) == TIER1.vm_ip
        assert seen(lab, "vm1", TIER2.vm_ip, 23) is None
        assert seen(lab, "vm2", TIER1.vm_ip, 22) is None  # tier 1 has no ingress ACL: closed
        # The private gateway and the static route behind it, as its ACL allows (tier 1, tcp 22).
        assert seen(lab, "vm1", PGW_GATEWAY, 22) == TIER1.vm_ip
        assert seen(lab, "vm2", PGW_GATEWAY, 22) is None
    with TcpServer(lab, "pgw", 22, bind=PGW_REMOTE_HOST):
        assert seen(lab, "vm1", PGW_REMOTE_HOST, 22) == TIER1.vm_ip
    # DNS and the data server answer on each hot-plugged tier's router IP.
    for role, tier in (("vm1", TIER1), ("vm2", TIER2)):
        assert dig(lab, role, tier.router_ip, "data-server") == [tier.router_ip]


def test_a_nic_that_never_comes_is_refused_after_the_bound_and_nothing_changes(hotplug_vpc, tmp_path):
    lab = hotplug_vpc
    router = RouterAgent(lab, tmp_path / "root")
    apply_ok(router, vpc.cmdline())
    before = router.show(), router.iptables_save()
    started = time.monotonic()
    router.env["VRAGENT_NIC_WAIT"] = "2"
    refused = router.apply(vpc.ips())
    waited = time.monotonic() - started
    assert refused.returncode == 2
    assert any("unknown device eth1" in e and "waited 2 s" in e for e in refused.errors), refused.errors
    assert 2 <= waited < 10
    assert (router.show(), router.iptables_save()) == before


@pytest.fixture
def late_public(make_lab):
    return make_lab(second_public=True, hotplug=("eth3",))


def test_an_isolated_routers_late_public_nic_is_waited_for_brought_up_and_carries_its_ips(late_public, tmp_path):
    """A further public VLAN: the hypervisor plugs eth3 when its first IP is associated
    (`new_nic` true on that IP's entry) and the IpAssocCommand follows at once."""
    lab = late_public
    router = RouterAgent(lab, tmp_path / "root")
    apply_ok(router, sample.cmdline(), sample.ips(sample.ip_entry(SOURCE_NAT_IP, source_nat=True)),
             sample.egress_allowed())
    assert "eth3" not in links(lab)
    later = PlugLater(lab, "eth3", PLUG_DELAY)
    entry = sample.ip_entry(SECOND_PUBLIC_IPS[0], nic=3) | {"new_nic": True}
    try:
        apply_ok(router, sample.ips(sample.ip_entry(SOURCE_NAT_IP, source_nat=True), entry),
                 sample.forward_rules(sample.forward_rule(SECOND_PUBLIC_IPS[0], 2222, VM1_IP, 22)),
                 sample.firewall_rules(sample.firewall_rule(40, ports=2222, public_ip=SECOND_PUBLIC_IPS[0])))
    finally:
        later.join()
    assert admin_up(lab, "eth3")
    with TcpServer(lab, "vm1", 22):
        # In from beyond eth3's gateway, answered out of eth3 (its policy routing table).
        forwarded = tcp_connect(lab, "up2", SECOND_PUBLIC_IPS[0], 2222, timeout=1.0, source=SECOND_UPSTREAM_SOURCE)
    assert forwarded.ok and forwarded.peer_seen == SECOND_UPSTREAM_SOURCE, forwarded.error
    with TcpServer(lab, "up", 8080):
        assert seen(lab, "vm1", PUBLIC_GATEWAY, 8080) == SOURCE_NAT_IP
