"""The boot path and the management server's read-only queries: a simulated reboot brings
back exactly the committed state; without a state the router stays closed; usage counters
and status answer in the formats callers parse."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.cli import sample_network
from vragent.lab.topology import EXTRA_PUBLIC_IPS, PUBLIC_GATEWAY, SOURCE_NAT_IP, UPSTREAM_SOURCES, VM1_IP
from vragent.lab.traffic import TcpServer, tcp_connect
from tests.lab.test_netfilter import tables_of

REPO = Path(__file__).resolve().parents[2]
FAIL_CLOSED = REPO / "packaging/lib/fail-closed"
PF_IP = EXTRA_PUBLIC_IPS[0]


def status(router: RouterAgent) -> dict:
    return json.loads(router.run("status", "--json").stdout)


def addresses(lab) -> str:
    return lab.run("vr", ["ip", "-4", "-o", "addr", "show"]).stdout


def power_off(lab, router: RouterAgent) -> None:
    """What a reboot leaves: no daemons, empty tables with ACCEPT policies, no addresses."""
    for pidfile in (router.root / "run/vragent").glob("*.pid"):
        try:
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass
    for table in ("raw", "mangle", "nat", "filter"):
        lab.run("vr", ["iptables", "-w", "-t", table, "-F"])
        lab.run("vr", ["iptables", "-w", "-t", table, "-X"])
    for chain in ("INPUT", "FORWARD", "OUTPUT"):
        lab.run("vr", ["iptables", "-w", "-P", chain, "ACCEPT"])
    for device in ("eth0", "eth1", "eth2"):
        lab.run("vr", ["ip", "addr", "flush", "dev", device])
    lab.run("vr", ["sysctl", "-qw", "net.ipv4.ip_forward=0"])


def boot(lab, router: RouterAgent):
    """The boot entries, in the order the units run them: fail closed, then restore."""
    env = ["env", f"VRAGENT_ROOT={router.root}"]
    closed = lab.run("vr", [*env, "sh", str(FAIL_CLOSED)], check=False)
    assert closed.returncode == 0, closed.stderr
    return router.run("restore")


def test_a_simulated_reboot_serves_exactly_the_committed_state_again(lab, tmp_path):
    router = RouterAgent(lab, tmp_path / "root")
    assert router.apply(*sample_network()).returncode == 0
    committed_tables, committed_addresses = tables_of(router.iptables_save()), addresses(lab)
    assert status(router)["drift"] == []

    power_off(lab, router)
    assert status(router)["drift"], "a flushed router must show drift"

    restored = boot(lab, router)
    assert restored.returncode == 0, restored.stderr
    assert tables_of(router.iptables_save()) == committed_tables
    assert addresses(lab) == committed_addresses
    report = status(router)
    assert report["drift"] == [] and all(d["healthy"] for d in report["daemons"].values())
    assert report["daemons"]["dnsmasq"]["pid"]
    with TcpServer(lab, "vm1", 22):
        assert tcp_connect(lab, "up", PF_IP, 2222, source=UPSTREAM_SOURCES[0]).ok


def test_without_a_persisted_state_the_boot_path_leaves_the_router_closed_and_says_why(lab, tmp_path):
    router = RouterAgent(lab, tmp_path / "root")
    restored = boot(lab, router)
    assert restored.returncode == 0
    assert "no persisted state" in restored.stdout and "closed" in restored.stdout
    saved = router.iptables_save()
    assert ":INPUT DROP" in saved and ":FORWARD DROP" in saved
    # Give the router its addresses by hand: it still forwards nothing.
    lab.run("vr", ["ip", "addr", "add", "192.0.2.1/24", "dev", "eth0"])
    lab.run("vr", ["ip", "addr", "add", f"{SOURCE_NAT_IP}/24", "dev", "eth2"])
    lab.run("vr", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    with TcpServer(lab, "up", 8080):
        assert not tcp_connect(lab, "vm1", PUBLIC_GATEWAY, 8080, timeout=1).ok


def test_an_unreadable_state_leaves_the_router_closed_and_exits_non_zero(lab, tmp_path):
    router = RouterAgent(lab, tmp_path / "root")
    state = router.root / "var/lib/vragent/state.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"format": "vragent/1", "port_forwards": [{"public_ip": ')
    restored = boot(lab, router)
    assert restored.returncode == 1 and "unreadable" in restored.stderr
    assert ":FORWARD DROP" in router.iptables_save()


def test_netusage_reports_bytes_sent_and_received_in_the_incumbent_format(lab, tmp_path):
    router = RouterAgent(lab, tmp_path / "root")
    assert router.apply(sample.cmdline(), sample.ips(), sample.egress_allowed()).returncode == 0
    netusage = ["sh", str(REPO / "packaging/netusage.sh")]
    assert re.fullmatch(r"(0:){4}", lab.run("vr", [*netusage, "-g"]).stdout.strip())
    with TcpServer(lab, "up", 8080):
        assert tcp_connect(lab, "vm1", PUBLIC_GATEWAY, 8080).ok
    output = lab.run("vr", [*netusage, "-g"]).stdout.strip()
    assert re.fullmatch(r"(\d+:){4}", output), output
    sent, received, *_ = (int(v) for v in output.rstrip(":").split(":"))
    assert sent > 0 and received > 0
    per_nic = lab.run("vr", [*netusage, "-g", "-l", SOURCE_NAT_IP]).stdout.strip()
    assert re.fullmatch(r"(\d+:){4}", per_nic) and int(per_nic.split(":")[0]) > 0
    # A re-apply must not reset the counters the management server bills from.
    assert router.apply(sample.cmdline(), sample.ips(), sample.forward_rules(
        sample.forward_rule(PF_IP, 2222, VM1_IP, 22))).returncode == 0
    assert int(lab.run("vr", [*netusage, "-g"]).stdout.split(":")[0]) >= sent


def test_status_reports_version_last_change_and_fingerprint(lab, tmp_path):
    router = RouterAgent(lab, tmp_path / "root")
    first = router.apply(sample.cmdline(), sample.ips())
    report = status(router)
    assert report["version"] and report["fingerprint"].startswith("sha256:")
    assert report["last_apply"]["status"] == "applied" and report["last_apply"]["push"] == first.result["push"]
    assert report["vrrp"] == "n/a" and report["drift"] == []
    text = router.run("status").stdout
    assert "drift: none" in text and "last change:" in text
