"""Routed networks (is_routed=true) with dynamic routing, proven against a real BGP peer:
FRR (zebra + bgpd) on the upstream host, AS 65001, peering with the router (AS 65100)
over the public segment with a TCP MD5 password. The router announces its guest
networks; upstream learns them into its kernel and reaches the guests by their own
addresses; the router learns upstream's network. Upstream sees the guests' own
addresses (no NAT), for a routed isolated network and for a routed VPC; the routing
firewall (isolated) and the network ACLs (VPC) decide what comes in and goes out.
Every apply converges, also with zebra's learned routes in the router's main table."""

from __future__ import annotations

import pytest

from vragent.lab import sample, sample_vpc as vpc
from vragent.lab.agent import RouterAgent
from vragent.lab.bgppeer import FrrPeer, bgp_routes, session_state, wait_for
from vragent.lab.topology import PUBLIC_GATEWAY, SOURCE_NAT_IP, UPSTREAM_SOURCES
from vragent.lab.traffic import TcpServer, tcp_connect
from vragent.paths import Paths
from vragent.subsystems.bgp.render import BgpPaths
from tests.lab.checks import apply_ok, connects

ALLOWED, OTHER = UPSTREAM_SOURCES
UPSTREAM_NETWORK = "203.0.113.0/25"  # upstream's own network (UPSTREAM_SOURCES), announced to the router
VM1, VM2 = "192.0.2.11", "192.0.2.12"
SESSION_TIMEOUT = 40.0


def upstream_peer(lab, tmp_path, password: str | None = sample.BGP_PASSWORD) -> FrrPeer:
    return FrrPeer(lab, "up", tmp_path / "up-frr", sample.UPSTREAM_AS, PUBLIC_GATEWAY,
                   [(SOURCE_NAT_IP, sample.ROUTER_AS, password)], [UPSTREAM_NETWORK])


def frr_pids(router: RouterAgent) -> tuple[str, str]:
    files = BgpPaths(Paths.from_root(router.root))
    return files.zebra_pid.read_text(), files.bgpd_pid.read_text()


def established(lab, router: RouterAgent) -> None:
    vty = BgpPaths(Paths.from_root(router.root)).run
    wait_for(lambda: session_state(lab, "vr", vty, PUBLIC_GATEWAY) == "Established", SESSION_TIMEOUT,
             "the router's BGP session with upstream")


def isolated_pushes(*extra) -> list[dict]:
    ingress = sample.routing_firewall_rule(11, "tcp", 8080, source_cidrs=(f"{ALLOWED}/32",))
    return [sample.routed_cmdline(), sample.ips(), sample.guestnetwork(),
            sample.firewall_rules(sample.system_egress_rule(True), ingress),
            sample.bgp_peers(sample.bgp_peer(password=sample.BGP_PASSWORD)), *extra]


def test_a_routed_network_is_announced_by_bgp_and_reached_by_its_own_addresses(make_lab, tmp_path):
    lab = make_lab()
    router = RouterAgent(lab, tmp_path / "root")
    apply_ok(router, *isolated_pushes(), observe=frr_pids)
    assert "SNAT" not in router.iptables_save()
    with upstream_peer(lab, tmp_path):
        established(lab, router)
        # Upstream learned the guest network from the router, and the router upstream's.
        wait_for(lambda: bgp_routes(lab, "up").get(sample.GUEST_CIDR) == SOURCE_NAT_IP, SESSION_TIMEOUT,
                 "upstream's route to the guest network")
        wait_for(lambda: bgp_routes(lab, "vr").get(UPSTREAM_NETWORK) == PUBLIC_GATEWAY, SESSION_TIMEOUT,
                 "the router's route to upstream's network")
        assert set(bgp_routes(lab, "up")) == {sample.GUEST_CIDR}  # only the guests: no transit
        # Out: upstream sees the guest's own address.
        with TcpServer(lab, "up", 8080, bind=ALLOWED):
            result = tcp_connect(lab, "vm1", ALLOWED, 8080)
            assert result.ok and result.peer_seen == VM1, result
        # In: the routing firewall rule admits 203.0.113.10 to tcp 8080, nothing else.
        with TcpServer(lab, "vm1", 8080), TcpServer(lab, "vm1", 9090):
            result = tcp_connect(lab, "up", VM1, 8080, source=ALLOWED)
            assert result.ok and result.peer_seen == ALLOWED, result
            assert not connects(lab, "up", VM1, 8080, source=OTHER)
            assert not connects(lab, "up", VM1, 9090, source=ALLOWED)
        # Converged with a live session and zebra's routes in the main table.
        apply_ok(router, *isolated_pushes(), observe=frr_pids)
        assert bgp_routes(lab, "vr").get(UPSTREAM_NETWORK) == PUBLIC_GATEWAY


def test_a_wrong_password_brings_no_session_and_no_peers_stop_frr(make_lab, tmp_path):
    lab = make_lab()
    router = RouterAgent(lab, tmp_path / "root")
    apply_ok(router, *isolated_pushes())
    vty = BgpPaths(Paths.from_root(router.root)).run
    with upstream_peer(lab, tmp_path, password="not-the-Password"):
        with pytest.raises(AssertionError):
            wait_for(lambda: session_state(lab, "vr", vty, PUBLIC_GATEWAY) == "Established", 8, "no session")
        assert sample.GUEST_CIDR not in bgp_routes(lab, "up")
    with upstream_peer(lab, tmp_path):
        established(lab, router)
        wait_for(lambda: sample.GUEST_CIDR in bgp_routes(lab, "up"), SESSION_TIMEOUT, "the guest route")
        files = BgpPaths(Paths.from_root(router.root))
        pids = frr_pids(router)
        # The whole list goes: both daemons stop, upstream withdraws the route.
        done = apply_ok(router, sample.bgp_peers())
        assert {"frr-zebra: stop (no longer needed)", "frr-bgpd: stop (no longer needed)"} <= \
            {s["summary"] for s in done.steps}, done.steps
        assert not files.bgpd_conf.exists() and not files.zebra_conf.exists()
        wait_for(lambda: sample.GUEST_CIDR not in bgp_routes(lab, "up"), SESSION_TIMEOUT, "the route withdrawn")
        assert "vr-bgp" not in router.iptables_save()
        # Peers again: both start again (new PIDs) and the session comes back.
        apply_ok(router, sample.bgp_peers(sample.bgp_peer(password=sample.BGP_PASSWORD)))
        assert frr_pids(router) != pids
        established(lab, router)


def test_a_routed_vpc_announces_its_tiers_and_its_acls_decide(make_lab, tmp_path):
    lab = make_lab(router_type="vpcrouter", tiers=2)
    router = RouterAgent(lab, tmp_path / "root")
    tier1, tier2 = vpc.tier(1), vpc.tier(2)
    peers = [sample.bgp_peer(network_id=200 + n, cidr=vpc.tier(n).cidr, password=sample.BGP_PASSWORD) for n in (1, 2)]
    pushes = [vpc.cmdline(is_routed="true"), vpc.ips(), vpc.guestnetwork(1), vpc.guestnetwork(2),
              vpc.network_acl(1, ingress=[vpc.acl_rule("tcp", 8080)], egress=[vpc.acl_rule("all")]),
              vpc.network_acl(2, ingress=[], egress=[]), sample.bgp_peers(*peers)]
    apply_ok(router, *pushes, observe=frr_pids)
    assert "SNAT" not in router.iptables_save()
    with upstream_peer(lab, tmp_path):
        established(lab, router)
        wait_for(lambda: {tier1.cidr, tier2.cidr} <= set(bgp_routes(lab, "up")), SESSION_TIMEOUT,
                 "upstream's routes to both tiers")
        assert bgp_routes(lab, "up")[tier1.cidr] == SOURCE_NAT_IP
        with TcpServer(lab, "up", 8080, bind=ALLOWED):
            result = tcp_connect(lab, "vm1", ALLOWED, 8080)
            assert result.ok and result.peer_seen == tier1.vm_ip, result  # the VM's own address
            # Tier 2's ACL allows no egress: routed, what no rule allows is dropped.
            assert not connects(lab, "vm2", ALLOWED, 8080)
        with TcpServer(lab, "vm1", 8080), TcpServer(lab, "vm2", 8080):
            result = tcp_connect(lab, "up", tier1.vm_ip, 8080, source=ALLOWED)
            assert result.ok and result.peer_seen == ALLOWED, result
            assert not connects(lab, "up", tier2.vm_ip, 8080, source=ALLOWED)
        apply_ok(router, *pushes, observe=frr_pids)
