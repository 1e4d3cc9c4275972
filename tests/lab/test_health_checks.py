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
import time

import pytest

from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.cloudstack_peer import RELEASE, SIGNATURE, CloudStackRouter, missing_reason, peer_dir
from vragent.lab.topology import (EXTRA_PUBLIC_IPS, ROUTER_GUEST_IP, SOURCE_NAT_IP, VM1_IP, VM1_MAC, VM2_IP,
                                  VM2_MAC)

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
