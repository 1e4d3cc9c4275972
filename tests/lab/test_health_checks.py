"""CloudStack's own health checks on routers vragent configured (issue 14).

The management server's `getRouterHealthCheckResults performfreshchecks=true` runs
`getRouterMonitorResults.sh true`: CloudStack's `/root/monitorServices.py` (services of
monitor.conf, then every check in /root/health_checks/) and prints "FAILING CHECKS:" and
"MONITOR RESULTS:" as VirtualRoutingResource parses them. Here the real scripts
(VRAGENT_CLOUDSTACK_SYSTEMVM) run on isolated, VPC and shared-network lab routers: on a
healthy router every check passes; each thing broken on purpose fails its check, and only
that one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.cloudstack_peer import RELEASE, SIGNATURE, CloudStackRouter, missing_reason, peer_dir
from vragent.lab.topology import EXTRA_PUBLIC_IPS, ROUTER_GUEST_IP, VM1_IP, VM1_MAC, VM2_IP, VM2_MAC

pytestmark = pytest.mark.skipif(peer_dir() is None, reason=missing_reason())

PF_IP = EXTRA_PUBLIC_IPS[0]
# What the management server watches on a non-redundant router (monitoring_services):
# dnsmasq, haproxy and apache2; sshd is left out here, as the lab runs no sshd.
SERVICES = ("[dhcp]:processname=dnsmasq:servicename=dnsmasq:pidfile=/var/run/dnsmasq/dnsmasq.pid:,"
            "[loadbalancing]:processname=haproxy:servicename=haproxy:pidfile=/var/run/haproxy.pid:,"
            "[webserver]:processname=apache2:servicename=apache2:pidfile=/var/run/apache2/apache2.pid:,")


def monitor_service(vms, gateways, port_forwards=(), haproxy_data="", advanced_interval=10, basic_interval=3):
    """monitor_service.json as createMonitorServiceCommand builds it, with monitoring on
    (ROUTER_MONITORING_ENABLED unset: no disable_monitoring key) and the health-check data
    of getRouterHealthChecksConfig."""
    config = {
        "virtualMachines": "".join(f"vmName={n},macAddress={m},ip={i},dhcp=true,dns=true;" for n, m, i in vms),
        "gateways": "gatewaysIps=" + "".join(f"{g} " for g in gateways),
        "portForwarding": "".join(f"sourceIp={s},sourcePortStart={sp},sourcePortEnd={sp},destIp={d},"
                                  f"destPortStart={dp},destPortEnd={dp};" for s, sp, d, dp in port_forwards),
        "haproxyData": haproxy_data,
        "systemThresholds": "minDiskNeeded=10,maxCpuUsage=100,maxMemoryUsage=100;",
        "routerVersion": f"templateVersion={RELEASE},scriptsVersion={SIGNATURE}",
    }
    return {"type": "monitorservice", "config": SERVICES, "health_checks_enabled": True,
            "health_checks_basic_run_interval": basic_interval,
            "health_checks_advanced_run_interval": advanced_interval,
            "excluded_health_checks": "", "health_checks_config": config, "delete_from_processed_cache": True}


def parse_results(output: str) -> tuple[list[str], dict]:
    """VirtualRoutingResource.parseLinesForHealthChecks, then the management server's JSON."""
    failing, results, reading = [], [], None
    for line in output.strip().split("\n"):
        line = line.strip()
        if "FAILING CHECKS" in line:
            reading = "failing"
        elif "MONITOR RESULTS" in line:
            reading = "results"
        elif reading == "failing":
            failing += [w.strip() for w in line.split(",") if w.strip()]
        elif reading == "results":
            results.append(line)
    return failing, json.loads("".join(results))


def fresh_checks(router: CloudStackRouter) -> tuple[list[str], dict]:
    writable = router.script("filesystem_writable_check.py")
    assert writable.returncode == 0 and "writable" in writable.stdout, writable
    done = router.script("getRouterMonitorResults.sh", "true", timeout=300)
    assert done.returncode == 0, done.stderr
    failing, results = parse_results(done.stdout)
    for kind in ("basic", "advanced"):
        for name, check in results[kind].items():
            if name != "lastRun":
                assert set(check) == {"success", "lastUpdate", "lastRunDuration", "message"}, check
                assert check["success"] in ("SUCCESS", "FAILED", "WARNING", "UNKNOWN")
                int(check["lastUpdate"]), float(check["lastRunDuration"])
    return failing, results


def assert_all_pass(failing, results, expected):
    names = {kind: {n for n in results[kind] if n != "lastRun"} for kind in ("basic", "advanced")}
    assert failing == [], {k: {n: c for n, c in results[k].items() if n != "lastRun" and c["success"] != "SUCCESS"}
                           for k in results}
    for kind, checks in expected.items():
        assert checks <= names[kind], (kind, names[kind])
    for kind in results:
        for name, check in results[kind].items():
            if name != "lastRun":
                assert check["success"] == "SUCCESS", (kind, name, check)


ISOLATED_BASIC = {"dhcp.service", "webserver.service", "cpu_usage_check.py", "memory_usage_check.py",
                  "disk_space_check.py", "gateways_check.py", "router_version_check.py",
                  "vragent_data_server_check.py"}
ISOLATED_ADVANCED = {"dhcp_check.py", "dns_check.py", "iptables_check.py", "vragent_dnsmasq_check.py"}


def isolated_pushes():
    return [sample.cmdline(), sample.ips(), sample.guestnetwork(),
            sample.dhcp_entry(VM1_MAC, VM1_IP, "web-01", ROUTER_GUEST_IP, ROUTER_GUEST_IP),
            sample.dhcp_entry(VM2_MAC, VM2_IP, "db-01", ROUTER_GUEST_IP, ROUTER_GUEST_IP),
            sample.vmdata(VM1_IP, "web-01"), sample.vmdata(VM2_IP, "db-01"),
            sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)),
            monitor_service([("web-01", VM1_MAC, VM1_IP), ("db-01", VM2_MAC, VM2_IP)], [ROUTER_GUEST_IP],
                            [(PF_IP, 2222, VM1_IP, 22)])]


@pytest.fixture
def isolated(lab, tmp_path):
    agent = RouterAgent(lab, tmp_path / "root")
    result = agent.apply(*isolated_pushes())
    assert result.returncode == 0, result.errors
    for again in agent.reapply(*isolated_pushes()):
        assert again.returncode == 0 and again.steps == [], again.steps
    return agent, CloudStackRouter(lab, agent.root)


def test_a_healthy_isolated_router_passes_every_check(isolated):
    agent, router = isolated
    started = time.monotonic()
    failing, results = fresh_checks(router)
    assert_all_pass(failing, results, {"basic": ISOLATED_BASIC, "advanced": ISOLATED_ADVANCED})
    # Healthy services are found at once: no restart retries (the incumbent's masked units: ~27 s).
    assert "loadbalancing.service" not in results["basic"]  # no load balancer: vragent runs no HAProxy
    assert results["basic"]["dhcp.service"]["message"] == "service is running"
    print(f"fresh health check on a healthy isolated router: {time.monotonic() - started:.1f} s")


def failed(results, kind):
    return {name for name, check in results[kind].items() if name != "lastRun" and check["success"] == "FAILED"}


def test_a_vm_the_router_lost_fails_the_dhcp_and_dns_checks_and_only_those(isolated):
    agent, router = isolated
    # The management server still lists db-01 (its health data), the router no longer has it.
    result = agent.apply(sample.dhcp_entry(VM2_MAC, VM2_IP, "db-01", ROUTER_GUEST_IP, ROUTER_GUEST_IP, remove=True))
    assert result.returncode == 0, result.errors
    failing, results = fresh_checks(router)
    assert sorted(failing) == ["dhcp_check.py", "dns_check.py", "vragent_dnsmasq_check.py"], results
    assert "db-01" in results["advanced"]["dhcp_check.py"]["message"]
    assert "db-01 -> no address" in results["advanced"]["vragent_dnsmasq_check.py"]["message"]
    assert failed(results, "basic") == set()


def test_a_port_forward_missing_from_the_kernel_fails_iptables_check_and_only_it(isolated):
    agent, router = isolated
    agent.lab.run("vr", ["iptables", "-w", "-t", "nat", "-F", f"vr-pf-{PF_IP}"])
    failing, results = fresh_checks(router)
    assert failing == ["iptables_check.py"], results
    assert f"{PF_IP}:2222 -> {VM1_IP}:22" in results["advanced"]["iptables_check.py"]["message"]
    # vragent puts it back: the next apply converges the tables, and the check passes again.
    assert agent.apply(*isolated_pushes(), full=True).returncode == 0
    assert fresh_checks(router)[0] == []


def _pid(agent, name):
    return int((agent.root / f"run/vragent/{name}.pid").read_text().split()[0])


def test_dead_dnsmasq_and_data_server_fail_their_checks_and_are_restarted_by_their_units(isolated):
    agent, router = isolated
    dnsmasq, server = _pid(agent, "dnsmasq"), _pid(agent, "metadata")
    os.kill(dnsmasq, signal.SIGKILL)
    os.kill(server, signal.SIGKILL)
    time.sleep(0.3)
    # What only observes: the advanced run (no service monitoring) and the data server check.
    done = router.run(["python", "/root/monitorServices.py", "advanced"])
    assert done.returncode == 0, done.stderr
    advanced = json.loads((agent.root / "root/advanced_monitor_results.json").read_text())
    assert failed({"advanced": advanced}, "advanced") == {"vragent_dnsmasq_check.py"}, advanced
    assert advanced["vragent_dnsmasq_check.py"]["message"] == "dnsmasq is not running"
    direct = router.run(["./health_checks/vragent_data_server_check.py", "basic"])
    assert direct.returncode == 1 and "does not answer" in direct.stdout, direct
    # The fresh check's basic run finds both dead and restarts them through vragent's units.
    failing, results = fresh_checks(router)
    assert failing == [], results
    # (The lab's stand-in for systemd restarts every dead daemon at once, so the second
    # service may already be back when the monitor looks at it.)
    messages = {results["basic"][s]["message"] for s in ("dhcp.service", "webserver.service")}
    assert "service is running, was restarted" in messages and messages <= {
        "service is running, was restarted", "service is running"}, results["basic"]
    assert _pid(agent, "dnsmasq") != dnsmasq and _pid(agent, "metadata") != server
    # getRouterAlerts.sh hands the restarts to the management server (GetRouterAlertsAnswer).
    alerts = router.script("getRouterAlerts.sh", "1970-01-01", "00:00:00")
    assert alerts.returncode == 0 and "is recovered successfully" in alerts.stdout, alerts
    lines = [line for line in alerts.stdout.strip().split("\\n") if line]  # Java's split drops the empty tail
    assert time.strptime(lines[-1].split(",")[0], "%Y-%m-%d %H:%M:%S")


# -- a VPC router, with a load balancer ---------------------------------------------------

def _lb_data(public_ip, port, backends):
    return (f"maxconn=4096,sourcePortStart={port},sourcePortEnd={port},sourceIp={public_ip},destPortStart=8080,"
            f"destPortEnd=8080,algorithm=roundrobin,protocol=tcp,stickiness=None,keepAliveEnabled=false,"
            f"vmIps={' '.join(backends)};")


def vpc_pushes():
    from vragent.lab import sample_lb as lb
    from vragent.lab import sample_vpc as vpc
    from vragent.lab.topology import VPC_TIERS

    tier1, tier2 = VPC_TIERS
    lb_ip, pf_ip = EXTRA_PUBLIC_IPS[0], EXTRA_PUBLIC_IPS[1]
    rule = lb.lb_rule(lb_ip, 80, [(tier1.vm_ip, 8080)])
    return [vpc.cmdline(), vpc.ips(vpc.ip_entry(vpc.SOURCE_NAT_IP, source_nat=True), vpc.ip_entry(lb_ip),
                                   vpc.ip_entry(pf_ip)),
            vpc.guestnetwork(1), vpc.guestnetwork(2), vpc.dhcp_entry(1, "web-01"), vpc.dhcp_entry(2, "db-01"),
            sample.forward_rules(sample.forward_rule(pf_ip, 2222, tier2.vm_ip, 22)),
            lb.loadbalancer(rule),
            monitor_service([("web-01", tier1.vm_mac, tier1.vm_ip), ("db-01", tier2.vm_mac, tier2.vm_ip)],
                            [tier1.router_ip, tier2.router_ip], [(pf_ip, 2222, tier2.vm_ip, 22)],
                            _lb_data(lb_ip, 80, [tier1.vm_ip]))]


def test_a_healthy_vpc_router_passes_every_check_and_a_stale_or_dead_haproxy_fails(make_lab, tmp_path):
    lab = make_lab(router_type="vpcrouter", tiers=2)
    agent = RouterAgent(lab, tmp_path / "root")
    result = agent.apply(*vpc_pushes())
    assert result.returncode == 0, result.errors
    for again in agent.reapply(*vpc_pushes()):
        assert again.returncode == 0 and again.steps == [], again.steps
    router = CloudStackRouter(lab, agent.root)
    failing, results = fresh_checks(router)
    assert_all_pass(failing, results, {"basic": ISOLATED_BASIC | {"loadbalancing.service"},
                                       "advanced": ISOLATED_ADVANCED | {"haproxy_check.py", "vragent_haproxy_check.py"}})
    assert results["advanced"]["haproxy_check.py"]["message"] == "All checks pass"
    # A configuration on disk HAProxy never loaded: stale.
    config = agent.root / "etc/haproxy/haproxy.cfg"
    time.sleep(1.1)
    config.write_text(config.read_text() + "# an operator's edit, never reloaded\n")
    failing, results = fresh_checks(router)
    assert failing == ["vragent_haproxy_check.py"], results
    assert "stale configuration" in results["advanced"]["vragent_haproxy_check.py"]["message"]
    # vragent's next apply puts its file back and HAProxy runs it: healthy again.
    assert agent.apply(*vpc_pushes(), full=True).returncode == 0
    assert fresh_checks(router)[0] == []
    # HAProxy dead: the advanced run says so; the basic run restarts it through its unit.
    os.kill(_pid(agent, "haproxy"), signal.SIGKILL)
    time.sleep(0.3)
    assert router.run(["python", "/root/monitorServices.py", "advanced"]).returncode == 0
    advanced = json.loads((agent.root / "root/advanced_monitor_results.json").read_text())
    assert failed({"advanced": advanced}, "advanced") == {"vragent_haproxy_check.py"}, advanced
    assert advanced["vragent_haproxy_check.py"]["message"] == "HAProxy is not running"
    failing, results = fresh_checks(router)
    assert failing == [] and results["basic"]["loadbalancing.service"]["message"].endswith("was restarted"), results


# -- a shared network's VR (dhcpsrvr) ------------------------------------------------------

def test_a_healthy_shared_network_router_passes_every_check(make_lab, tmp_path):
    from vragent.lab.topology import ALIAS_GATEWAY, ALIAS_ROUTER_IP, ALIAS_VM_IP, SHARED_GATEWAY, SHARED_ROUTER_IP

    lab = make_lab(router_type="dhcpsrvr", vm_static_addresses=False)
    agent = RouterAgent(lab, tmp_path / "root")
    pushes = [sample.shared_cmdline(), sample.ip_aliases(), sample.dhcpconfig(),
              sample.dhcp_entry(VM1_MAC, VM1_IP, "web-01", SHARED_GATEWAY, SHARED_ROUTER_IP),
              sample.dhcp_entry(VM2_MAC, ALIAS_VM_IP, "db-01", ALIAS_GATEWAY, ALIAS_ROUTER_IP),
              monitor_service([("web-01", VM1_MAC, VM1_IP), ("db-01", VM2_MAC, ALIAS_VM_IP)], [SHARED_GATEWAY])]
    result = agent.apply(*pushes)
    assert result.returncode == 0, result.errors
    router = CloudStackRouter(lab, agent.root)
    failing, results = fresh_checks(router)
    assert_all_pass(failing, results, {"basic": ISOLATED_BASIC, "advanced": ISOLATED_ADVANCED})
    assert results["advanced"]["dns_check.py"]["message"] == "All 2 VMs are present in /etc/hosts"


# -- periodic checks ----------------------------------------------------------------------

def test_periodic_checks_run_on_the_pushed_schedule_and_their_last_results_are_returned(isolated):
    """The management server's periodic fetch (getRouterMonitorResults.sh false) returns what
    cron last ran: /etc/cron.d/process, as vragent renders it from monitor_service.json, run
    by the real cron (one minute: the shortest interval the management server can set)."""
    agent, router = isolated
    pushes = isolated_pushes()
    pushes[-1] = monitor_service([("web-01", VM1_MAC, VM1_IP), ("db-01", VM2_MAC, VM2_IP)], [ROUTER_GUEST_IP],
                                 [(PF_IP, 2222, VM1_IP, 22)], basic_interval=1, advanced_interval=1)
    assert agent.apply(*pushes).returncode == 0
    cron_file = agent.root / "etc/cron.d/process"
    assert "*/1 * * * * root cd /root && /usr/bin/python3 /root/monitorServices.py basic" in cron_file.read_text()
    assert "*/1 * * * * root cd /root && /usr/bin/python3 /root/monitorServices.py advanced" in cron_file.read_text()
    (agent.root / ".lab/crontab").write_text("")  # the machine's own jobs stay out of the router
    (agent.root / ".lab/crontab").chmod(0o644)
    started = time.time()
    cron = router.popen(["cron", "-f"], extra_mounts=f"mount --bind {agent.root}/etc/cron.d /etc/cron.d && "
                                                    f"mount --bind {agent.root}/.lab/crontab /etc/crontab",
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        results_file = agent.root / "root/advanced_monitor_results.json"
        deadline = started + 150
        while time.time() < deadline:
            if all((agent.root / f"root/{k}_monitor_results.json").exists() for k in ("basic", "advanced")):
                break
            time.sleep(1)
        assert results_file.exists(), "cron ran no check within two minutes"
        time.sleep(15)  # let the run finish writing
    finally:
        agent.lab.terminate(cron)
    done = router.script("getRouterMonitorResults.sh", "false")
    failing, results = parse_results(done.stdout)
    assert failing == [], results
    for kind, expected in (("basic", ISOLATED_BASIC), ("advanced", ISOLATED_ADVANCED)):
        assert expected <= set(results[kind]), (kind, results[kind].keys())
        for name, check in results[kind].items():
            if name != "lastRun":
                assert check["success"] == "SUCCESS", (name, check)
                # Within the interval: run after cron started, less than two minutes ago.
                assert started - 1 <= int(check["lastUpdate"]) / 1000 <= time.time(), (name, check)
