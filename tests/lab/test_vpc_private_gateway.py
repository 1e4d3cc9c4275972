"""A VPC router's private gateway and static routes, proven with real traffic
(cloudstack-vr-wave2.md §1.4, §1.5): Lab(router_type="vpcrouter", private_gateway=True)
puts the router's eth4 on a private network (10.80.5.0/24) whose gateway is the `pgw`
machine, which also holds a "remote" network (10.90.0.0/16) on its lo.

Tier VMs reach the private network directly and the remote network only through a static
route via pgw, routed (their own source address) unless the private gateway has source
NAT; the private gateway's ACL decides what leaves the VPC towards it (ingress rules) and
what comes in from it (egress rules), the tiers' own ACLs what enters them; nothing of it
ever reaches the public side; every apply converges."""

from __future__ import annotations

import pytest

from vragent.lab import sample_vpc as vpc
from vragent.lab.agent import RouterAgent
from vragent.lab.topology import (PGW_CIDR, PGW_GATEWAY, PGW_REMOTE_CIDR, PGW_REMOTE_HOST, PGW_ROUTER_IP)
from vragent.lab.traffic import TcpServer, tcp_connect
from tests.lab import checks

TIER1, TIER2 = vpc.tier(1), vpc.tier(2)


def apply_ok(router: RouterAgent, *payloads):
    """Converges, routes included."""
    return checks.apply_ok(router, *payloads, observe=routes)


def routes(router: RouterAgent) -> str:
    return router.lab.run("vr", ["ip", "-4", "route", "show", "table", "all"]).stdout


def seen(lab, role, dst, port, source=None) -> str | None:
    """The client address the server saw, or None when the connection failed."""
    result = tcp_connect(lab, role, dst, port, timeout=1.0, source=source)
    return result.peer_seen if result.ok else None


# Counts, on the public upstream, every packet to the private networks: there must be none.
WATCHED = (PGW_CIDR, PGW_REMOTE_CIDR)


def watch_upstream(lab) -> None:
    for cidr in WATCHED:
        lab.run("up", ["iptables", "-t", "raw", "-A", "PREROUTING", "-d", cidr])
        lab.run("up", ["iptables", "-t", "raw", "-A", "PREROUTING", "-s", cidr])


def upstream_packets(lab) -> int:
    out = lab.run("up", ["iptables", "-t", "raw", "-L", "PREROUTING", "-v", "-n", "-x"]).stdout
    return sum(int(line.split()[0]) for line in out.splitlines()[2:] if line.strip())


@pytest.fixture
def pgw_lab(make_lab):
    return make_lab(router_type="vpcrouter", tiers=2, private_gateway=True)


@pytest.fixture
def router(pgw_lab, tmp_path) -> RouterAgent:
    agent = RouterAgent(pgw_lab, tmp_path / "root")
    apply_ok(agent, *vpc.vpc())
    return agent


def test_tiers_reach_the_remote_network_only_by_the_static_route_and_only_as_the_acls_allow(pgw_lab, router):
    lab = pgw_lab
    watch_upstream(lab)
    # The private gateway and its ACL, as the management server pushes them before the tiers'.
    apply_ok(router, vpc.ips(vpc.private_gateway_entry()),
             vpc.private_gateway_acl(ingress=[vpc.acl_rule("tcp", 22, cidr=TIER1.cidr)]))
    assert f"{PGW_ROUTER_IP}/24" in lab.run("vr", ["ip", "-4", "-br", "addr", "show", "dev", "eth4"]).stdout
    with TcpServer(lab, "pgw", 22), TcpServer(lab, "pgw", 23), TcpServer(lab, "vm2", 3306):
        # The private network itself is on-link: routed, the tier VM's own address.
        assert seen(lab, "vm1", PGW_GATEWAY, 22) == TIER1.vm_ip
        # Only tier 1, only tcp 22: the private gateway's ingress rules guard the way out.
        assert seen(lab, "vm2", PGW_GATEWAY, 22) is None
        assert seen(lab, "vm1", PGW_GATEWAY, 23) is None
        # The remote network is not reachable without its route.
        assert seen(lab, "vm1", PGW_REMOTE_HOST, 22) is None
        assert upstream_packets(lab) > 0  # that try went to the default route (the watch counts)
        lab.run("up", ["iptables", "-t", "raw", "-Z"])

        apply_ok(router, vpc.static_routes())
        saved = router.iptables_save()
        assert f"-d {PGW_REMOTE_CIDR} -o eth4 -j ACL_INBOUND_eth4" in saved
        assert f"-s {PGW_REMOTE_CIDR} ! -d {PGW_ROUTER_IP}/32 -i eth4" in saved
        assert f"{PGW_REMOTE_CIDR} via {PGW_GATEWAY} dev eth4 proto 77" in lab.run("vr", ["ip", "route"]).stdout
        assert seen(lab, "vm1", PGW_REMOTE_HOST, 22) == TIER1.vm_ip  # routed, never NAT'ed
        assert seen(lab, "vm1", PGW_REMOTE_HOST, 23) is None  # under the private gateway's ACL too
        assert seen(lab, "vm2", PGW_REMOTE_HOST, 22) is None

        # From the remote network into tier 2: the tier's ingress ACL decides...
        assert seen(lab, "pgw", TIER2.vm_ip, 3306, source=PGW_REMOTE_HOST) is None
        apply_ok(router, vpc.network_acl(2, ingress=[vpc.acl_rule("tcp", 3306, cidr=PGW_REMOTE_CIDR)]))
        assert seen(lab, "pgw", TIER2.vm_ip, 3306, source=PGW_REMOTE_HOST) == PGW_REMOTE_HOST
        # ...after the private gateway's egress rules (what comes in from it, on the destination).
        apply_ok(router, vpc.private_gateway_acl(
            ingress=[vpc.acl_rule("tcp", 22, cidr=TIER1.cidr)],
            egress=[vpc.acl_rule("tcp", 3306, cidr=f"{TIER2.vm_ip}/32", allowed=False)]))
        assert seen(lab, "pgw", TIER2.vm_ip, 3306, source=PGW_REMOTE_HOST) is None
        assert seen(lab, "vm1", PGW_REMOTE_HOST, 22) == TIER1.vm_ip  # replies still come back
        assert upstream_packets(lab) == 0  # the public side never saw any of it

        # Revoking the route removes it, and the remote network with it.
        apply_ok(router, vpc.static_routes(vpc.static_route(revoke=True)))
        assert PGW_REMOTE_CIDR not in lab.run("vr", ["ip", "route"]).stdout
        saved = router.iptables_save()  # nor its ACL jumps (CloudStack #10063)
        assert f"-d {PGW_REMOTE_CIDR} -o eth4" not in saved and f"-s {PGW_REMOTE_CIDR} ! -d" not in saved
        assert seen(lab, "vm1", PGW_REMOTE_HOST, 22) is None
        assert seen(lab, "vm1", PGW_GATEWAY, 22) == TIER1.vm_ip
    assert router.show().get("static_routes") is None


def test_a_private_gateway_with_source_nat_hides_the_vpc_behind_its_ip(pgw_lab, router):
    lab = pgw_lab
    apply_ok(router, vpc.ips(vpc.private_gateway_entry(source_nat=True)),
             vpc.private_gateway_acl(ingress=[vpc.acl_rule("tcp", 22, cidr=vpc.ANY)]), vpc.static_routes())
    with TcpServer(lab, "pgw", 22):
        assert seen(lab, "vm1", PGW_REMOTE_HOST, 22) == PGW_ROUTER_IP
        assert seen(lab, "vm2", PGW_GATEWAY, 22) == PGW_ROUTER_IP
    # Releasing the private gateway takes its address, its route and its rules away.
    apply_ok(router, vpc.ips(vpc.private_gateway_entry(add=False)))
    assert lab.run("vr", ["ip", "-4", "-br", "addr", "show", "dev", "eth4"]).stdout.split()[2:] == []
    assert PGW_REMOTE_CIDR not in routes(router)
    assert "eth4" not in router.iptables_save()


def test_bad_private_gateway_and_static_route_pushes_are_refused_and_change_nothing(pgw_lab, router):
    apply_ok(router, vpc.ips(vpc.private_gateway_entry()), vpc.private_gateway_acl(), vpc.static_routes())
    before = router.iptables_save(), routes(router), router.show()
    result = router.apply(vpc.static_routes(vpc.static_route("10.70.9.0/24"),
                                            vpc.static_route("203.0.113.0/24", gateway="10.80.6.1"),
                                            vpc.static_route(revoke=True)))
    assert result.returncode == 2 and result.result["status"] == "invalid"
    messages = "\n".join(result.errors)
    assert ":$.routes[0].network: 10.70.9.0/24 overlaps the VPC's CIDR 10.70.0.0/16" in messages, messages
    assert ":$.routes[1].gateway: 10.80.6.1 is no next hop" in messages, messages
    result = router.apply(vpc.ips(vpc.private_gateway_entry(public_ip="10.80.5.3", nic_dev_id=3)))
    assert result.returncode == 2
    assert ":$.ip_address[0].nic_dev_id: eth3 is a tier's NIC, not a private gateway's" in "\n".join(result.errors)
    assert (router.iptables_save(), routes(router), router.show()) == before


def test_a_static_nat_vm_reaches_the_static_routes_network_with_its_own_address(pgw_lab, router):
    """Static NAT marks nothing towards a static route's network (§1.5): the VM's traffic
    there takes the route through the private gateway, not its public IP's way out."""
    from vragent.lab import sample
    from vragent.lab.topology import EXTRA_PUBLIC_IPS, PUBLIC_GATEWAY

    lab = pgw_lab
    public = EXTRA_PUBLIC_IPS[1]
    watch_upstream(lab)
    apply_ok(router, vpc.ips(vpc.ip_entry(public, one_to_one_nat=True)),
             sample.staticnat_rules(sample.staticnat_rule(public, TIER1.vm_ip)),
             vpc.ips(vpc.private_gateway_entry()), vpc.private_gateway_acl(ingress=[vpc.acl_rule("tcp", 22)]),
             vpc.static_routes())
    with TcpServer(lab, "pgw", 22), TcpServer(lab, "up", 8080):
        assert seen(lab, "vm1", PGW_REMOTE_HOST, 22) == TIER1.vm_ip
        assert upstream_packets(lab) == 0
        assert seen(lab, "vm1", PUBLIC_GATEWAY, 8080) == public  # its public way out is unchanged
