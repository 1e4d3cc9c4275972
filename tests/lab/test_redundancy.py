"""A redundant router pair (keepalived VRRP, conntrackd), proven with real traffic.

Two routers share the guest and public segments; both are configured by the real agent
and supervised as in the lab. The guests reach everything through the VIP 192.0.2.1.
bench/bench_failover.py measures the same failovers over 10 runs each.
"""

from __future__ import annotations

import time

import pytest

from vragent.lab import sample
from vragent.lab.dhcp import DhcpClient, dig
from vragent.lab.redundancy import NUMBER, VIP, Pair, Prober, pair_pushes, router_of_mac, vip_owners, wait_until
from vragent.lab.topology import EXTRA_PUBLIC_IPS, PUBLIC_GATEWAY, SOURCE_NAT_IP, VM1_IP, VM1_MAC, VM2_IP, VM2_MAC
from vragent.lab.traffic import HeldConnection, TcpServer, tcp_connect

ADVERT_INT = 1
# Liveness deadlines, deliberately loose: the failover-time targets (3 x advert_int + 1 s for a
# hard failure, 1 s for a graceful stop) are measured over 10 runs by bench/bench_failover.py,
# never asserted as timings here (a loaded CI machine must not turn a pass into a fail).
FAILOVER_BOUND = 3 * (3 * ADVERT_INT + 1)
GRACEFUL_BOUND = 3.0
PF_IP = EXTRA_PUBLIC_IPS[0]
PROBE_INTERVAL = 0.02


def dhcp_entry(mac: str, ip: str, name: str) -> dict:
    return {"type": "dhcpentry", "host_name": name, "mac_address": mac, "ipv4_address": ip,
            "dns_addresses": VIP, "default_gateway": VIP, "static_routes": "", "default_entry": True,
            "remove": False, "delete_from_processed_cache": False}


def services() -> list[dict]:
    """What the guests use through the pair: port forwarding 2222 -> vm1:22, their leases."""
    return [sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)),
            sample.firewall_rules(sample.firewall_rule(20, ports=2222, public_ip=PF_IP)),
            dhcp_entry(VM1_MAC, VM1_IP, "web-01"), dhcp_entry(VM2_MAC, VM2_IP, "db-01")]


@pytest.fixture
def pair(make_lab, tmp_path) -> Pair:
    lab = make_lab(routers=2)
    pair = Pair(lab, tmp_path, advert_int=ADVERT_INT)
    pair.start()
    for role in pair.routers:
        applied = pair.apply(role, *services())
        assert applied.returncode == 0, applied.errors
    return pair


def holder(pair: Pair) -> set[str | None]:
    """The routers that answer ARP for the VIP on the guest segment."""
    return {router_of_mac(mac) for mac in vip_owners(pair.lab)}


def fail_over(pair: Pair, fault, bound: float, tmp_path) -> tuple[str, str, float]:
    """Inject `fault(pair, primary)` under a probe stream from vm1 to the upstream host;
    returns (old primary, new primary, seconds until the guest's traffic flowed again)."""
    old = pair.primary()
    assert old, pair.statuses()
    new = pair.other(old)
    with Prober(pair.lab, "vm1", PUBLIC_GATEWAY, PROBE_INTERVAL, tmp_path) as probe:
        time.sleep(0.5)
        moment = fault(pair, old)
        assert wait_until(lambda: pair.primary() == new, bound + 5), pair.statuses()
        time.sleep(1.5)
    outage = probe.log().outage_after(moment)
    assert outage <= bound, f"{old} -> {new}: traffic resumed after {outage:.2f} s (bound {bound} s)"
    return old, new, outage


def comes_back_as_backup(pair: Pair, role: str, tmp_path, timeout: float = 15.0) -> None:
    """The old primary returns (its keepalived restarted by the supervisor, or its link
    back) as BACKUP, without preempting, and the guests' traffic is not interrupted."""
    primary = pair.other(role)
    with Prober(pair.lab, "vm1", PUBLIC_GATEWAY, PROBE_INTERVAL, tmp_path) as probe:
        started = time.monotonic()
        assert wait_until(lambda: pair.statuses() == {role: "BACKUP", primary: "PRIMARY"}, timeout), pair.statuses()
        time.sleep(2 * ADVERT_INT + 1)  # long enough for a preemption to show
        assert pair.statuses() == {role: "BACKUP", primary: "PRIMARY"}
    log = probe.log()
    assert log.lost(started, max(log.sent.values()) - 0.5) == [], "traffic was interrupted"
    assert holder(pair) == {primary}


def test_exactly_one_router_is_primary_and_the_guests_are_served_through_it(pair, tmp_path):
    lab = pair.lab
    primary = pair.primary()
    backup = pair.other(primary)
    assert pair.statuses() == {primary: "PRIMARY", backup: "BACKUP"}
    assert pair.routers[primary].run("status", "--checkrouter").stdout == "Status: PRIMARY\n"
    assert pair.routers[backup].run("status", "--checkrouter").stdout == "Status: BACKUP\n"
    # Both routers run the same VRRP settings from the same pushes.
    assert pair.status("vr")["fingerprint"] == pair.status("vr2")["fingerprint"]
    assert holder(pair) == {primary}
    # The backup keeps its public NIC down (both share its MAC) and serves nothing.
    assert "state DOWN" in lab.run(backup, ["ip", "link", "show", "eth2"]).stdout
    assert pair.pid(backup, "dnsmasq.pid") is None and pair.pid(primary, "dnsmasq.pid")

    lease = DhcpClient(lab, "vm2", tmp_path).obtain()
    assert lease.ip == VM2_IP and lease.options["new_routers"] == VIP, lease.log
    assert lease.options["new_domain_name_servers"] == VIP
    assert dig(lab, "vm1", VIP, "db-01.lab.internal") == [VM2_IP]
    with TcpServer(lab, "up", 8080):
        assert tcp_connect(lab, "vm1", PUBLIC_GATEWAY, 8080).peer_seen == SOURCE_NAT_IP
        assert tcp_connect(lab, "vm2", PUBLIC_GATEWAY, 8080).peer_seen == SOURCE_NAT_IP
    with TcpServer(lab, "vm1", 22):
        forwarded = tcp_connect(lab, "up", PF_IP, 2222)
    assert forwarded.ok and forwarded.peer_seen == PUBLIC_GATEWAY

    # Converged: the same pushes again change nothing on either router, the BACKUP included.
    for role in pair.routers:
        for again in pair.routers[role].reapply(*pair_pushes(NUMBER[role]), *services()):
            assert again.returncode == 0 and again.result["status"] == "unchanged", (role, again.steps)
    assert sorted(pair.transitions().values()) == [0, 1]  # one router became PRIMARY, once


def test_sigkill_of_the_primarys_keepalived_fails_over_and_the_vip_stays_single(pair, tmp_path):
    for _ in range(2):
        old, new, outage = fail_over(pair, Pair.kill_keepalived, FAILOVER_BOUND, tmp_path)
        # keepalived 2.2.7 killed with SIGKILL keeps the VIP; vragent took it down.
        assert holder(pair) == {new}
        assert "state DOWN" in pair.lab.run(old, ["ip", "link", "show", "eth2"]).stdout
        comes_back_as_backup(pair, old, tmp_path)


def test_guest_link_down_on_the_primary_fails_over(pair, tmp_path):
    old, new, outage = fail_over(pair, lambda p, role: p.guest_link(role, up=False), FAILOVER_BOUND, tmp_path)
    assert pair.statuses()[old] == "FAULT"
    assert holder(pair) == {new}
    pair.guest_link(old, up=True)
    comes_back_as_backup(pair, old, tmp_path)


def test_a_graceful_stop_of_the_primary_fails_over_at_once(pair, tmp_path):
    old, new, outage = fail_over(pair, Pair.stop_keepalived, GRACEFUL_BOUND, tmp_path)
    assert holder(pair) == {new}
    comes_back_as_backup(pair, old, tmp_path)


def test_an_established_connection_through_source_nat_survives_a_failover(pair, tmp_path):
    lab = pair.lab
    with TcpServer(lab, "up", 9000) as server, HeldConnection(lab, "vm1", PUBLIC_GATEWAY, 9000) as held:
        assert held.peer_seen == SOURCE_NAT_IP and held.alive()
        time.sleep(1.0)  # conntrackd has sent the flow to the backup
        old = pair.primary()
        pair.kill_keepalived(old)
        assert wait_until(lambda: pair.primary() == pair.other(old), FAILOVER_BOUND + 5), pair.statuses()
        assert held.alive(), "the connection did not survive the failover"
        assert held.alive()
        assert server.peers() == [SOURCE_NAT_IP]  # still the one connection, never re-made


def test_ordinary_pushes_cause_no_transition_and_no_lost_probe(pair, tmp_path):
    before = pair.transitions()
    keepalived = {role: pair.keepalived_pids(role) for role in pair.routers}
    configs = {role: (r.root / "etc/keepalived/keepalived.conf").stat().st_mtime_ns
               for role, r in pair.routers.items()}
    pushes = []
    for n in range(5):
        pushes.append(sample.forward_rules(sample.forward_rule(PF_IP, 3000 + n, VM2_IP, 80)))
        pushes.append(sample.firewall_rules(sample.firewall_rule(100 + n, ports=3000 + n, public_ip=PF_IP)))
        pushes.append(dhcp_entry(f"02:00:00:00:01:{n:02x}", f"192.0.2.{100 + n}", f"vm-{n}"))
    with Prober(pair.lab, "vm1", PUBLIC_GATEWAY, 0.1, tmp_path) as probe:  # 10 per second
        started = time.monotonic()
        for payload in pushes:
            for role in pair.routers:
                result = pair.apply(role, payload)
                assert result.returncode == 0, result.errors
                assert "keepalived" not in str(result.steps) and "conntrackd" not in str(result.steps)
        time.sleep(1.0)
    log = probe.log()
    assert len(log.sent) >= 10
    assert log.lost(started, max(log.sent.values()) - 0.5) == []
    assert pair.transitions() == before
    assert {role: pair.keepalived_pids(role) for role in pair.routers} == keepalived
    assert {role: (r.root / "etc/keepalived/keepalived.conf").stat().st_mtime_ns
            for role, r in pair.routers.items()} == configs


def test_a_vrrp_change_reloads_keepalived_without_a_transition(pair, tmp_path):
    before = pair.transitions()
    primary = pair.primary()
    pids = {role: pair.keepalived_pids(role) for role in pair.routers}
    with Prober(pair.lab, "vm1", PUBLIC_GATEWAY, 0.1, tmp_path) as probe:
        started = time.monotonic()
        for role, number in (("vr", 1), ("vr2", 2)):
            # A new priority for each router: a VRRP setting, applied with SIGHUP.
            result = pair.apply(role, pair_pushes(number, router_pr=str(50 + number))[0])
            assert result.returncode == 0, result.errors
            actions = [s["summary"] for s in result.steps if s["kind"] == "service"]
            assert actions == ["keepalived: reload (keepalived.conf changed)"], result.steps
            assert f"priority {50 + number}" in (pair.routers[role].root /
                                                 "etc/keepalived/keepalived.conf").read_text()
        time.sleep(3 * ADVERT_INT + 1)
    assert {role: pair.keepalived_pids(role) for role in pair.routers} == pids
    assert pair.transitions() == before and pair.primary() == primary
    log = probe.log()
    assert log.lost(started, max(log.sent.values()) - 0.5) == []

    assert holder(pair) == {primary}

    # A push that would make the pair disagree (the VIP as this router's own address) is refused.
    config = pair.routers["vr2"].root / "etc/keepalived/keepalived.conf"
    text = config.read_text()
    refused = pair.apply("vr2", {**sample.guestnetwork(2, redundant=True), "router_guest_gateway": "192.0.2.3"})
    assert refused.returncode == 2
    assert any(".router_guest_gateway: the VIP 192.0.2.3 is this router's own guest address" in e
               for e in refused.errors), refused.errors
    assert config.read_text() == text


def test_guests_get_their_metadata_and_password_through_the_vip_across_a_failover(pair, tmp_path):
    """The data server answers on the gateway VIP on whichever router holds it: a VM that
    learned the VIP at boot still reads its data and fetches its password after a failover."""
    from vragent.lab.guestdata import metadata, password

    for role in pair.routers:
        applied = pair.apply(role, sample.vmdata(VM1_IP, "web-01", b"#cloud-config\n", instance_id="i-2-11-VM"))
        assert applied.returncode == 0, applied.errors
    (before,) = metadata(pair.lab, "vm1", VIP, "/latest/meta-data/instance-id")
    assert (before.status, before.text) == (200, "i-2-11-VM")

    old, new, _ = fail_over(pair, Pair.kill_keepalived, FAILOVER_BOUND, tmp_path)
    user_data, instance = metadata(pair.lab, "vm1", VIP, "/latest/user-data", "/latest/meta-data/instance-id")
    assert (user_data.status, user_data.body, instance.text) == (200, b"#cloud-config\n", "i-2-11-VM")
    # A password set after the failover (the management server pushes it to both routers).
    for role in pair.routers:
        assert pair.apply(role, sample.vmpassword(VM1_IP, "Pair-pw-7")).returncode == 0
    answers = password(pair.lab, "vm1", VIP, "send_my_password", "saved_password", "send_my_password")
    assert [a.text for a in answers] == ["Pair-pw-7", "saved_password", "saved_password"]


def policy_routing(lab, role: str) -> tuple[list[str], list[str]]:
    """Table_eth3's rules and routes on one router, as operators list them."""
    import json

    rules = json.loads(lab.run(role, ["ip", "-N", "-j", "rule"]).stdout)
    routes = json.loads(lab.run(role, ["ip", "-N", "-j", "route", "show", "table", "103"]).stdout or "[]")
    return (sorted(f"{r['priority']} {r.get('fwmark') or r['src']}" for r in rules if r["table"] == "103"),
            sorted(f"{r.get('type', 'unicast')} {r['dst']} {r.get('dev', '')}".strip() for r in routes))


def test_a_second_public_nic_and_its_policy_routing_follow_the_primary(make_lab, tmp_path):
    """Static NAT on an eth3 IP of a pair: served by the PRIMARY, with the PRIMARY's policy
    routing, before and after a failover; the new PRIMARY's rules and table are the old one's."""
    from vragent.lab.topology import SECOND_PUBLIC_IPS, SECOND_UPSTREAM_SOURCE

    nat_ip = SECOND_PUBLIC_IPS[1]
    pair = Pair(make_lab(routers=2, second_public=True), tmp_path, advert_int=ADVERT_INT)
    pair.start()
    eth3 = [sample.ips(sample.ip_entry(SOURCE_NAT_IP, source_nat=True), sample.ip_entry(nat_ip, nic=3)),
            sample.staticnat_rules(sample.staticnat_rule(nat_ip, VM2_IP)),
            sample.firewall_rules(sample.firewall_rule(41, ports=80, public_ip=nat_ip))]
    for role in pair.routers:
        applied = pair.apply(role, *eth3)
        assert applied.returncode == 0, applied.errors

    def served() -> bool:
        with TcpServer(pair.lab, "vm2", 80):
            return tcp_connect(pair.lab, "up2", nat_ip, 80, timeout=1.0, source=SECOND_UPSTREAM_SOURCE).ok

    old = pair.primary()
    assert served()
    before = policy_routing(pair.lab, old)
    assert before[0] == ["1103 0x67", "1203 203.0.113.128"] and "unicast default eth3" in before[1]
    assert "state DOWN" in pair.lab.run(pair.other(old), ["ip", "link", "show", "eth3"]).stdout

    old, new, _ = fail_over(pair, Pair.kill_keepalived, FAILOVER_BOUND, tmp_path)
    assert wait_until(served, 10)
    assert policy_routing(pair.lab, new) == before
    assert "state DOWN" in pair.lab.run(old, ["ip", "link", "show", "eth3"]).stdout
    for role in pair.routers:  # converged on both, the new BACKUP included
        for again in pair.routers[role].reapply(*eth3):
            assert again.returncode == 0 and again.result["status"] == "unchanged", (role, again.steps)
