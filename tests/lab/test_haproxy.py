"""Load balancing with HAProxy, proven with real traffic: requests from the upstream host
to a public IP:port are balanced across HTTP servers in the guest VMs; changes reload
HAProxy without failing a request or cutting a connection; a bad configuration never
replaces a good one; HAProxy runs exactly while a load balancer exists, and comes back
when it dies."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from vragent.lab import sample, sample_lb as lb
from vragent.lab.agent import RouterAgent
from vragent.lab.lbtraffic import HttpLoad, HttpNameServer, http_answers
from vragent.lab.topology import EXTRA_PUBLIC_IPS, ROUTER_GUEST_IP, SOURCE_NAT_IP, VM1_IP, VM2_IP
from vragent.lab.traffic import HeldConnection, TcpServer, tcp_connect
from vragent.paths import Paths
from vragent.subsystems.lb import render as layout
from vragent.shell.services import DirectBackend
from vragent.subsystems.lb import service

LB_IP = EXTRA_PUBLIC_IPS[0]
BOTH = ((VM1_IP, 8080), (VM2_IP, 8080))


@pytest.fixture
def router(lab, tmp_path) -> RouterAgent:
    agent = RouterAgent(lab, tmp_path / "root")
    # Like any public port, a load balancer's needs an ingress firewall rule.
    opened = sample.firewall_rules(sample.firewall_rule(1, ports=(80, 90), public_ip=LB_IP),
                                   sample.firewall_rule(2, ports=443, public_ip=LB_IP),
                                   sample.firewall_rule(3, ports=7000, public_ip=LB_IP),
                                   sample.firewall_rule(4, ports=8081, public_ip=SOURCE_NAT_IP))
    applied = agent.apply(sample.cmdline(), sample.ips(), opened)
    assert applied.returncode == 0, applied.errors
    return agent


@pytest.fixture
def backends(lab):
    with HttpNameServer(lab, "vm1", 8080), HttpNameServer(lab, "vm2", 8080):
        yield


def paths_of(router: RouterAgent) -> Paths:
    return Paths(router.root)


def master_pid(router: RouterAgent) -> int | None:
    """The live HAProxy master of this router (the pidfile's, unless dead or a zombie)."""
    return DirectBackend(paths_of(router)).running(service.SERVICE)


def worker_pid(router: RouterAgent) -> int | None:
    return service.worker_pid(paths_of(router))


def haproxy_pids(lab) -> list[int]:
    found = []
    for pid in lab.pids():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "haproxy":
                found.append(pid)
        except OSError:
            pass
    return found


def config_file(router: RouterAgent) -> Path:
    return layout.config_path(paths_of(router))


def file_identity(path: Path) -> tuple | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns


def apply_ok(router: RouterAgent, *payloads):
    """Apply, then prove convergence: the same push again writes nothing and reloads nothing."""
    first = router.apply(*payloads)
    assert first.returncode == 0, (first.errors, first.stderr)
    before = (router.iptables_save(), file_identity(config_file(router)), master_pid(router), worker_pid(router),
              file_identity(router.root / "var/lib/vragent/state.json"))
    for again in router.reapply(*payloads):
        assert again.returncode == 0, again.errors
        assert again.result["status"] == "unchanged" and again.steps == []
    after = (router.iptables_save(), file_identity(config_file(router)), master_pid(router), worker_pid(router),
             file_identity(router.root / "var/lib/vragent/state.json"))
    assert after == before
    return first


def answers(lab, port: int = 80, count: int = 20, **options) -> Counter:
    return Counter(http_answers(lab, "up", LB_IP, port, count, **options))


def test_requests_from_upstream_are_balanced_round_robin_and_a_removed_backend_is_out(lab, router, backends):
    result = apply_ok(router, lb.loadbalancer(lb.lb_rule(LB_IP, 80, BOTH)))
    assert [s["summary"] for s in result.steps if s["kind"] == "service"] == ["haproxy: start (not running)"]
    assert answers(lab) == {"vm1": 10, "vm2": 10}

    result = apply_ok(router, lb.loadbalancer(lb.lb_rule(LB_IP, 80, [(VM1_IP, 8080)])))
    assert [s["summary"] for s in result.steps] == ["haproxy: reload (haproxy.cfg changed)"]
    assert answers(lab) == {"vm1": 20}


def test_input_accepts_exactly_the_pairs_the_push_lists(lab, router, backends):
    both = lb.loadbalancer(lb.lb_rule(LB_IP, 80, BOTH), lb.lb_rule(LB_IP, 81, BOTH))
    both["rules"][0]["add_rules"] = [f"{LB_IP}:80:"]  # HAProxy listens on 81 too, but nobody asked to open it
    apply_ok(router, both)
    saved = router.iptables_save()
    assert "-A vr-INPUT -j vr-lb" in saved
    assert [line for line in saved.splitlines() if line.startswith("-A vr-lb")] == [
        f"-A vr-lb -d {LB_IP}/32 -p tcp -m tcp --dport 80 -j ACCEPT"]
    assert set(answers(lab, 80, 4)) == {"vm1", "vm2"}
    assert all(answer.startswith("!") for answer in http_answers(lab, "up", LB_IP, 81, 1, timeout=1))
    assert set(http_answers(lab, "vr", LB_IP, 81, 2)) == {"vm1", "vm2"}  # it does listen


def test_twenty_changes_under_load_fail_no_request_and_keep_a_long_connection(lab, router, backends):
    def push(step: int) -> dict:
        http_backends = [BOTH, [(VM1_IP, 8080)], [(VM2_IP, 8080)]][step % 3]
        rules = [lb.lb_rule(LB_IP, 80, http_backends, extra=[f"\ttimeout server     {50000 + step}"]),
                 lb.lb_rule(LB_IP, 7000, [(VM1_IP, 7000)])]
        if step % 2:
            rules.append(lb.lb_rule(LB_IP, 81, BOTH))  # and its INPUT accept comes and goes
        return lb.loadbalancer(*rules)

    with TcpServer(lab, "vm1", 7000):
        assert router.apply(push(0)).returncode == 0
        master = master_pid(router)
        with HeldConnection(lab, "up", LB_IP, 7000) as held, HttpLoad(lab, "up", LB_IP, 80, minimum=2000) as load:
            assert held.alive()
            deadline = time.monotonic() + 10
            while load.progress()["requests"] < 100 and time.monotonic() < deadline:
                time.sleep(0.05)
            workers = set()
            for step in range(1, 21):
                result = router.apply(push(step))
                assert result.returncode == 0, result.errors
                actions = [s["summary"].split(" (")[0] for s in result.steps if s["kind"] == "service"]
                assert actions == ["haproxy: reload"]
                workers.add(worker_pid(router))
                assert held.alive(), f"the held connection died at change {step}"
            during = load.progress()["requests"]
            totals = load.finish()
        assert master_pid(router) == master  # reloads only, never a restart
    assert len(workers) == 20  # every change brought a new worker
    assert totals["failures"] == 0, totals["errors"]
    assert totals["requests"] >= 2000 and during >= 1000  # the load really ran across the changes
    assert set(totals["answers"]) == {"vm1", "vm2"}


def test_an_invalid_configuration_exits_1_keeps_failed_and_the_old_worker_serves(lab, router, backends):
    apply_ok(router, lb.loadbalancer(lb.lb_rule(LB_IP, 80, BOTH)))
    live = config_file(router).read_text()
    before = (router.iptables_save(), router.show(), master_pid(router), worker_pid(router))
    bad = lb.loadbalancer(lb.lb_rule(LB_IP, 80, BOTH, extra=["\tbalance sideways"]), lb.lb_rule(LB_IP, 82, BOTH))
    result = router.apply(bad)
    assert result.returncode == 1 and result.result["status"] == "failed"
    assert "candidate rejected before any change" in result.errors[0] and "haproxy -c" in result.errors[0]
    failed = config_file(router).with_name("haproxy.cfg.failed")
    assert "\tbalance sideways" in failed.read_text().splitlines()
    assert config_file(router).read_text() == live and not config_file(router).with_name("haproxy.cfg.new").exists()
    # Same master, same worker answering, same rules, same state.
    assert (router.iptables_save(), router.show(), master_pid(router), worker_pid(router)) == before
    assert answers(lab, count=4) == {"vm1": 2, "vm2": 2}
    # The next good push clears the evidence of the bad one.
    apply_ok(router, lb.loadbalancer(lb.lb_rule(LB_IP, 80, [(VM2_IP, 8080)])))
    assert not failed.exists() and answers(lab, count=4) == {"vm2": 4}


def test_a_listener_on_an_address_the_router_lacks_is_refused_before_anything_changes(lab, router, backends):
    apply_ok(router, lb.loadbalancer(lb.lb_rule(LB_IP, 80, BOTH)))
    live = config_file(router).read_text()
    before = (router.iptables_save(), router.show(), master_pid(router), worker_pid(router))
    # `haproxy -c` does not bind: this passed the check, then the reload failed (an outage of
    # the live listeners while it was rolled back). Now it is a validation error.
    payload = lb.loadbalancer(lb.lb_rule(LB_IP, 80, BOTH), lb.lb_rule("203.0.113.77", 80, BOTH))
    payload["rules"][0]["add_rules"] = [f"{LB_IP}:80:"]
    with HttpLoad(lab, "up", LB_IP, 80, minimum=200) as load:
        result = router.apply(payload)
        totals = load.finish()
    assert totals["failures"] == 0, totals["errors"]
    assert result.returncode == 2, result.errors
    assert any(".rules[0].configuration" in e and "203.0.113.77 is not an address of this router" in e
               for e in result.errors), result.errors
    assert result.steps == []
    assert config_file(router).read_text() == live
    assert not config_file(router).with_name("haproxy.cfg.failed").exists()
    assert (router.iptables_save(), router.show(), master_pid(router), worker_pid(router)) == before
    assert answers(lab, count=4) == {"vm1": 2, "vm2": 2}


def test_a_configuration_haproxy_checks_but_cannot_run_is_rolled_back(lab, router, backends):
    apply_ok(router, lb.loadbalancer(lb.lb_rule(LB_IP, 80, BOTH)))
    live = config_file(router).read_text()
    before = (router.iptables_save(), router.show(), master_pid(router))
    # `haproxy -c` does not bind; the new worker cannot bind a port another process holds.
    payload = lb.loadbalancer(lb.lb_rule(LB_IP, 80, BOTH), lb.lb_rule(LB_IP, 83, BOTH))
    with TcpServer(lab, "vr", 83, bind=LB_IP):
        result = router.apply(payload)
    assert result.returncode == 1, result.errors
    assert "did not start a worker with the new configuration" in result.errors[0]
    assert {s["status"] for s in result.steps if s["kind"] == "iptables"} == {"rolled back"}
    assert f"\tbind {LB_IP}:83" in config_file(router).with_name("haproxy.cfg.failed").read_text()
    assert config_file(router).read_text() == live
    assert (router.iptables_save(), router.show(), master_pid(router)) == before
    assert answers(lab, count=4) == {"vm1": 2, "vm2": 2}


def test_haproxy_runs_from_the_first_load_balancer_to_the_last(lab, router, backends):
    assert haproxy_pids(lab) == [] and master_pid(router) is None
    apply_ok(router, lb.loadbalancer(lb.lb_rule(LB_IP, 80, BOTH)))
    assert master_pid(router) in haproxy_pids(lab)
    result = apply_ok(router, lb.loadbalancer(revoked=[lb.lb_rule(LB_IP, 80, BOTH)]))
    assert [s["summary"] for s in result.steps if s["kind"] == "service"] == ["haproxy: stop (no longer needed)"]
    deadline = time.monotonic() + 5
    while haproxy_pids(lab) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert haproxy_pids(lab) == [] and not config_file(router).exists()
    assert "vr-lb" not in router.iptables_save()
    assert not tcp_connect(lab, "up", LB_IP, 80, timeout=1).ok


def test_a_dead_haproxy_is_started_again_by_supervise(lab, router, backends):
    apply_ok(router, lb.loadbalancer(lb.lb_rule(LB_IP, 80, BOTH)))
    supervisor = lab.popen("vr", router.command("supervise", "--interval", "0.2"))
    try:
        old = master_pid(router)
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while master_pid(router) in (None, old) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert master_pid(router) not in (None, old)
        assert set(answers(lab, count=4)) == {"vm1", "vm2"}
        # Stopped on purpose by an apply: it stays stopped.
        assert router.apply(lb.loadbalancer(revoked=[lb.lb_rule(LB_IP, 80, BOTH)])).returncode == 0
        time.sleep(1.0)
        assert master_pid(router) is None and haproxy_pids(lab) == []
        assert supervisor.poll() is None
    finally:
        lab.terminate(supervisor)


def test_server_state_survives_a_reload(lab, router, backends):
    rule = lb.lb_rule(LB_IP, 80, BOTH)
    apply_ok(router, lb.loadbalancer(rule))
    # An operator puts vm2 into maintenance; an unrelated change must not bring it back.
    service.runtime(layout.stats_socket(paths_of(router)), f"disable server {rule.pool}/{rule.pool}_1")
    assert answers(lab, count=4) == {"vm1": 4}
    old_worker = worker_pid(router)
    apply_ok(router, lb.loadbalancer(rule, timeout_server=60000))
    assert worker_pid(router) != old_worker
    assert answers(lab, count=4) == {"vm1": 4}
    saved = layout.server_state_file(paths_of(router)).read_text()
    assert f"{rule.pool}_1" in saved


def test_the_stats_page_is_only_where_the_push_asks_for_it(lab, router, backends):
    guest_stats = lb.Stats(ip=ROUTER_GUEST_IP, port=8081, cidrs="192.0.2.0/24")
    apply_ok(router, lb.loadbalancer(lb.lb_rule(LB_IP, 80, BOTH), stats=guest_stats))
    assert "-A vr-lb -s 192.0.2.0/24 -d 192.0.2.1/32 -p tcp -m tcp --dport 8081 -j ACCEPT" in router.iptables_save()
    # HAProxy answers the guest network (asking for the password it was given)...
    assert http_answers(lab, "vm1", ROUTER_GUEST_IP, 8081, 1, path="/admin?stats")[0].startswith("!401")
    # ...and nothing listens on the public side.
    for ip in (SOURCE_NAT_IP, LB_IP):
        assert not tcp_connect(lab, "up", ip, 8081, timeout=1).ok
    apply_ok(router, lb.loadbalancer(lb.lb_rule(LB_IP, 80, BOTH)))
    assert not tcp_connect(lab, "vm1", ROUTER_GUEST_IP, 8081, timeout=1).ok


def test_native_load_balancer_with_source_hashing_then_round_robin(lab, router, backends):
    document = router.show()

    def native(algorithm: str) -> Path:
        section = lb.NativeLb([lb.balancer(LB_IP, 80, BOTH, name="web", protocol="http", algorithm=algorithm,
                                           health_check={"interval_ms": 500, "http_path": "/"})])
        return router.write_push(json.dumps(lb.with_load_balancing(document, section)), f"native-{algorithm}.json")

    apply_ok(router, native("source"))
    assert f"-A vr-lb -d {LB_IP}/32 -p tcp -m tcp --dport 80 -j ACCEPT" in router.iptables_save()
    by_source = answers(lab)
    assert len(by_source) == 1 and sum(by_source.values()) == 20  # one client address, one backend
    apply_ok(router, native("roundrobin"))
    assert answers(lab) == {"vm1": 10, "vm2": 10}
    assert config_file(router).read_text().startswith("# Generated by vragent from the router's native document")


def self_signed_rsa(tmp_path: Path, name: str = "lb.lab.internal") -> tuple[str, str]:
    """A certificate and its unencrypted key, as a user uploads them (uploadSslCert)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    return (tmp_path / "cert.pem").read_text(), (tmp_path / "key.pem").read_text()


def s_client(lab, *options: str) -> str:
    """openssl s_client from the upstream host to the load balancer's HTTPS port."""
    done = lab.run("up", ["openssl", "s_client", "-connect", f"{LB_IP}:443", "-servername", "lb.lab.internal",
                          *options], input="", check=False, timeout=10)
    return done.stdout + done.stderr


def test_ssl_offloading_serves_https_with_the_certificate_where_the_configuration_names_it(lab, router, tmp_path):
    """HAProxyConfigurator's SSL rule binds `ssl crt /etc/cloudstack/ssl/<pool>.pem` and the
    certificate comes named after the pool: HTTPS ends at the router, the backends get HTTP
    with X-Forwarded-Proto https."""
    cert_text, key_text = self_signed_rsa(tmp_path)
    ca = tmp_path / "ca.pem"
    ca.write_text(cert_text)
    rule = lb.lb_rule(LB_IP, 443, BOTH, ssl=True)
    push = lb.loadbalancer(rule, ssl_certs=[lb.ssl_cert(rule.pool, cert_text.replace("\n", "\r\n"), key_text)])
    assert any(f" ssl crt /etc/cloudstack/ssl/{rule.pool}.pem " in line for line in push["rules"][0]["configuration"])
    with HttpNameServer(lab, "vm1", 8080, header="X-Forwarded-Proto"), \
            HttpNameServer(lab, "vm2", 8080, header="X-Forwarded-Proto"):
        apply_ok(router, push)
        pem = router.root / f"etc/cloudstack/ssl/{rule.pool}.pem"
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
        config = config_file(router)
        assert f"ssl crt {pem} " in config.read_text()
        check = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        # curl: HTTPS, verified against the uploaded certificate, balanced over both VMs.
        bodies = set()
        for _ in range(4):
            done = lab.run("up", ["curl", "-sS", "--max-time", "5", "--cacert", str(ca),
                                  "--resolve", f"lb.lab.internal:443:{LB_IP}", "https://lb.lab.internal/"],
                           check=False, timeout=10)
            assert done.returncode == 0, done.stderr
            bodies.add(done.stdout)
        assert bodies == {"vm1 https", "vm2 https"}
        # openssl: the chain verifies, HTTP/2 is offered, TLS 1.2 works and TLS 1.1 is refused.
        served = s_client(lab, "-CAfile", str(ca), "-alpn", "h2,http/1.1")
        assert "Verify return code: 0 (ok)" in served and "ALPN protocol: h2" in served, served
        assert "New, TLSv1.2, Cipher is ECDHE-RSA-AES256-GCM-SHA384" in s_client(lab, "-tls1_2")
        assert "alert protocol version" in s_client(lab, "-tls1_1")
    # The rule deleted: its certificate goes with it.
    with HttpNameServer(lab, "vm1", 8080), HttpNameServer(lab, "vm2", 8080):
        apply_ok(router, lb.loadbalancer(lb.lb_rule(LB_IP, 80, BOTH)))
        assert not pem.exists()
        assert set(answers(lab, 80, 2)) == {"vm1", "vm2"}
