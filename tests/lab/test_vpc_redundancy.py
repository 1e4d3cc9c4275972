"""A redundant VPC router pair (keepalived VRRP, conntrackd), proven with real traffic.

Lab(router_type="vpcrouter", routers=2, private_gateway=True): vr and vr2 each have the
control NIC (eth0), the public NIC (eth1, one MAC for both), two tiers (eth2, eth3: each
router its own address, the tier's gateway 10.70.N.1 the VRRP VIP) and the private gateway
(eth4, one MAC and one IP for both). The tier VMs use the VIPs as their default gateway.
What CloudStack's smoke tests check (test_vpc_redundant.py, test_privategw_acl.py
test_04_rvpc_privategw_static_routes) holds before and after a failover: one PRIMARY,
the private gateway's NIC UP there and DOWN on the BACKUP with the same MAC.
"""

from __future__ import annotations

import time

import pytest

from vragent.lab import sample_vpc as vpc
from vragent.lab.redundancy import Pair, vpc_pair_pushes, vpc_vip_holder, wait_until
from vragent.lab.topology import (PGW_DEVICE, PGW_GATEWAY, PGW_REMOTE_HOST, PGW_ROUTER_MAC, PUBLIC_GATEWAY,
                                  SOURCE_NAT_IP)
from vragent.lab.traffic import HeldConnection, TcpServer, tcp_connect

ADVERT_INT = 1
# Liveness deadlines, loose as in test_redundancy.py; the measured takeover is asserted
# against 3 x advert_int + 1 s on the routers' own clocks (keepalived's transition).
FAILOVER_BOUND = 3 * (3 * ADVERT_INT + 1)
TAKEOVER_BOUND = 3 * ADVERT_INT + 1
TIER1, TIER2 = vpc.tier(1), vpc.tier(2)
NUMBER = {"vr": 1, "vr2": 2}
ALLOW_ALL = [vpc.acl_rule("all")]


def services(router: int) -> list[dict]:
    """The private gateway, its ACL and static route, and the tiers' ACLs (egress open,
    ingress: tcp 22 and 80 from anywhere)."""
    return [vpc.ips(vpc.ip_entry(SOURCE_NAT_IP, source_nat=True), vpc.private_gateway_entry()),
            vpc.private_gateway_acl(ingress=ALLOW_ALL, egress=ALLOW_ALL), vpc.static_routes(),
            *(vpc.pair_network_acl(router, n, ingress=[vpc.acl_rule("tcp", 22), vpc.acl_rule("tcp", 80)],
                                   egress=ALLOW_ALL) for n in (1, 2))]


@pytest.fixture
def pair(make_lab, tmp_path) -> Pair:
    lab = make_lab(router_type="vpcrouter", tiers=2, routers=2, private_gateway=True)
    pair = Pair(lab, tmp_path, advert_int=ADVERT_INT, pushes=vpc_pair_pushes, vrrp_device=TIER1.device)
    pair.start()
    for role, number in NUMBER.items():
        applied = pair.apply(role, *services(number))
        assert applied.returncode == 0, applied.errors
    return pair


def link(pair: Pair, role: str, device: str) -> tuple[bool, str]:
    """(administratively UP, MAC) of a router's NIC."""
    import json

    (info,) = json.loads(pair.lab.run(role, ["ip", "-j", "link", "show", device]).stdout)
    return "UP" in info["flags"], info["address"]


def private_gateway_checks(pair: Pair) -> None:
    """test_04_rvpc_privategw_static_routes: the private gateway's NIC is UP on the PRIMARY
    and DOWN on the BACKUP, with the same MAC on both; every tier's VIP and the public and
    private gateway NICs are the PRIMARY's alone."""
    primary = pair.primary()
    assert primary, pair.statuses()
    backup = pair.other(primary)
    assert pair.statuses() == {primary: "PRIMARY", backup: "BACKUP"}
    up, mac = link(pair, primary, PGW_DEVICE)
    down, backup_mac = link(pair, backup, PGW_DEVICE)
    assert (up, down) == (True, False) and mac == backup_mac == PGW_ROUTER_MAC
    assert link(pair, primary, "eth1")[0] and not link(pair, backup, "eth1")[0]
    assert vpc_vip_holder(pair.lab, 1) == {primary} and vpc_vip_holder(pair.lab, 2) == {primary}
    # The BACKUP serves nothing: dnsmasq (and the data server's VIPs) only on the PRIMARY.
    assert pair.pid(backup, "dnsmasq.pid") is None and pair.pid(primary, "dnsmasq.pid")


def reaches_everything(pair: Pair) -> None:
    """Both tiers reach upstream (source NAT) and the private gateway's remote network
    (routed, their own addresses) through the PRIMARY."""
    lab = pair.lab
    with TcpServer(lab, "up", 8080):
        for vm in ("vm1", "vm2"):
            assert tcp_connect(lab, vm, PUBLIC_GATEWAY, 8080, timeout=2.0).peer_seen == SOURCE_NAT_IP, vm
    with TcpServer(lab, "pgw", 8081, bind=PGW_REMOTE_HOST):
        for vm, tier in (("vm1", TIER1), ("vm2", TIER2)):
            assert tcp_connect(lab, vm, PGW_REMOTE_HOST, 8081, timeout=2.0).peer_seen == tier.vm_ip, vm
        assert tcp_connect(lab, "vm1", PGW_GATEWAY, 8081, timeout=1.0).ok is False  # bound to the remote host only


def converged(pair: Pair) -> None:
    for role, number in NUMBER.items():
        for again in pair.routers[role].reapply(*vpc_pair_pushes(number, advert_int=str(ADVERT_INT)),
                                                *services(number)):
            assert again.returncode == 0 and again.result["status"] == "unchanged", (role, again.steps)


def test_a_redundant_vpc_pair_serves_both_tiers_and_the_private_gateway_through_the_primary(pair):
    private_gateway_checks(pair)
    reaches_everything(pair)
    converged(pair)
    assert sorted(pair.transitions().values()) == [0, 1]
    assert pair.status("vr")["fingerprint"] == pair.status("vr2")["fingerprint"]


def all_links(pair: Pair, role: str, up: bool) -> float:
    """Every cable of a router pulled (or plugged back) at its switch port: a dead host."""
    from vragent.lab.topology import switch_port

    moment = time.time()
    for nic in next(node for node in pair.lab.nodes if node.role == role).nics:
        pair.lab.run("sw", ["ip", "link", "set", switch_port(role, nic.ifname), "up" if up else "down"])
    return moment


def kill_keepalived(pair: Pair, role: str) -> float:
    moment = time.time()
    pair.kill_keepalived(role)
    return moment


@pytest.mark.parametrize("fault", ["sigkill", "links-down"])
def test_the_backup_takes_over_in_time_and_an_established_flow_survives(pair, fault):
    """The PRIMARY dies (its keepalived SIGKILLed, or every link down): the BACKUP is
    PRIMARY within 3 x advert_int + 1 s, a tier VM's established TCP connection upstream
    survives (conntrackd), both tiers and the private gateway work through the new PRIMARY,
    and the private gateway checks hold on both routers before and after."""
    lab = pair.lab
    private_gateway_checks(pair)
    old = pair.primary()
    new = pair.other(old)
    with TcpServer(lab, "up", 9000) as server, HeldConnection(lab, "vm2", PUBLIC_GATEWAY, 9000) as held:
        assert held.peer_seen == SOURCE_NAT_IP and held.alive()
        time.sleep(1.0)  # conntrackd has sent the flow to the backup
        moment = kill_keepalived(pair, old) if fault == "sigkill" else all_links(pair, old, up=False)
        assert wait_until(lambda: pair.role(new) == "PRIMARY", FAILOVER_BOUND), pair.statuses()
        took = pair.status(new)["since"] - moment
        assert 0 < took <= TAKEOVER_BOUND, f"{old} -> {new}: PRIMARY after {took:.2f} s"
        assert held.alive(), "the connection did not survive the failover"
        assert server.peers() == [SOURCE_NAT_IP]  # still the one connection, never re-made
    if fault == "links-down":
        assert wait_until(lambda: pair.role(old) == "FAULT", 10), pair.statuses()
        all_links(pair, old, up=True)
    assert wait_until(lambda: pair.statuses() == {old: "BACKUP", new: "PRIMARY"}, 15), pair.statuses()
    private_gateway_checks(pair)
    reaches_everything(pair)
    converged(pair)
    print(f"\ntakeover after {fault}: {took:.2f} s")


def test_fifty_pushes_to_the_pair_cause_no_vrrp_transition(pair, tmp_path):
    """ACLs, a tier removed and added back, static routes, the private gateway's ACL: 50
    pushes to both routers, and no VRRP transition, no keepalived restart, no lost probe."""
    from vragent.lab.redundancy import Prober

    before = pair.transitions()
    keepalived = {role: pair.keepalived_pids(role) for role in pair.routers}
    primary = pair.primary()

    def pushes(router: int) -> list[dict]:
        out = []
        for n in range(10):
            out.append(vpc.pair_network_acl(router, 1, ingress=[vpc.acl_rule("tcp", 22), vpc.acl_rule("tcp", 1000 + n)],
                                            egress=ALLOW_ALL))
            out.append(vpc.static_routes(vpc.static_route(f"10.{91 + n}.0.0/16")))
            out.append(vpc.private_gateway_acl(ingress=[*ALLOW_ALL], egress=[vpc.acl_rule("tcp", 2000 + n), *ALLOW_ALL]))
            out.append(vpc.pair_guestnetwork(router, 2, add=n % 2 == 1))  # tier 2 goes, then comes back
            out.append(vpc.static_routes(vpc.static_route(f"10.{91 + n}.0.0/16", revoke=True)))
        return out

    batches = {role: pushes(number) for role, number in NUMBER.items()}
    assert len(batches["vr"]) == 50
    with Prober(pair.lab, "vm1", PUBLIC_GATEWAY, 0.1, tmp_path) as probe:
        started = time.monotonic()
        for index in range(50):
            for role in pair.routers:
                result = pair.apply(role, batches[role][index])
                assert result.returncode == 0, (role, index, result.errors)
        time.sleep(3 * ADVERT_INT + 1)
    log = probe.log()
    assert len(log.sent) >= 10
    assert log.lost(started, max(log.sent.values()) - 0.5) == []
    assert pair.transitions() == before and pair.primary() == primary
    assert {role: pair.keepalived_pids(role) for role in pair.routers} == keepalived
    # Tier 2 is back: the pair serves it as before.
    for role, number in NUMBER.items():
        assert pair.apply(role, *services(number)).returncode == 0
    private_gateway_checks(pair)
    reaches_everything(pair)
    converged(pair)
