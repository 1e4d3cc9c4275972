"""The lab itself, with no agent: wiring, isolation, traffic helpers and clean teardown."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from typing import Callable

import pytest

from vragent.lab import sample
from vragent.lab.topology import (
    CONTROL_ROUTER2_IP,
    CONTROL_ROUTER_IP,
    PUBLIC_GATEWAY,
    ROUTER_GUEST_IP,
    ROUTER_MACS,
    SOURCE_NAT_IP,
    UPSTREAM_SOURCES,
    VM1_IP,
    VM1_MAC,
    VM2_IP,
    VM2_MAC,
    Lab,
    LabCommandError,
)
from vragent.lab.traffic import HeldConnection, TcpServer, ping, tcp_connect, udp_probe

pytestmark = pytest.mark.lab

# Short deadlines where the expected answer is "no reply": the lab is a single host, so
# a reply that exists arrives in milliseconds.
NO_REPLY_TIMEOUT = 0.5


def add_address(lab: Lab, role: str, address: str, dev: str) -> None:
    lab.run(role, ["ip", "addr", "add", address, "dev", dev])


def ipv4_addresses(lab: Lab, role: str) -> list[str]:
    output = lab.run(role, ["ip", "-4", "-o", "addr", "show"]).stdout
    return re.findall(r"inet (\S+)", output)


def link(lab: Lab, role: str, ifname: str) -> dict[str, object]:
    return json.loads(lab.run(role, ["ip", "-j", "link", "show", "dev", ifname]).stdout)[0]


def root_namespace_links() -> set[str]:
    output = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True,
                            timeout=5).stdout
    return {line.split(": ")[1].split("@")[0] for line in output.splitlines()}


def lab_namespaces(prefix: str) -> list[str]:
    output = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True,
                            timeout=5).stdout
    return [line.split()[0] for line in output.splitlines() if line.startswith(f"{prefix}-")]


# --- wiring ---

def test_guest_vms_reach_each_other(lab: Lab) -> None:
    assert ping(lab, "vm1", VM2_IP)
    assert ping(lab, "vm2", VM1_IP, count=3)


def test_router_nics_are_up_with_cloudstack_names_and_fixed_macs_but_no_ipv4(lab: Lab) -> None:
    for ifname, mac in ROUTER_MACS["vr"].items():
        info = link(lab, "vr", ifname)
        assert info["address"] == mac
        assert "UP" in info["flags"]
    assert ipv4_addresses(lab, "vr") == ["127.0.0.1/8"]
    assert not ping(lab, "vm1", ROUTER_GUEST_IP, timeout=NO_REPLY_TIMEOUT)


@pytest.mark.parametrize(
    ("nic", "router_address", "host", "host_dst"),
    [
        ("eth0", f"{ROUTER_GUEST_IP}/24", "vm1", ROUTER_GUEST_IP),
        ("eth1", f"{CONTROL_ROUTER_IP}/16", "ctl", CONTROL_ROUTER_IP),
        ("eth2", f"{SOURCE_NAT_IP}/24", "up", SOURCE_NAT_IP),
    ],
    ids=["guest", "control", "public"],
)
def test_each_router_nic_is_cabled_to_its_segment(lab: Lab, nic: str, router_address: str, host: str,
                                                  host_dst: str) -> None:
    assert not ping(lab, host, host_dst, timeout=NO_REPLY_TIMEOUT)
    add_address(lab, "vr", router_address, nic)
    assert ping(lab, host, host_dst)


def test_guest_and_public_segments_are_separate(lab: Lab) -> None:
    # The same subnet on the public side must not be reachable from the guest side.
    add_address(lab, "up", "192.0.2.50/24", "eth0")
    assert not ping(lab, "vm1", "192.0.2.50", timeout=NO_REPLY_TIMEOUT)


def test_vms_have_their_fixed_macs_and_default_route_via_the_router(lab: Lab) -> None:
    assert link(lab, "vm1", "eth0")["address"] == VM1_MAC
    assert link(lab, "vm2", "eth0")["address"] == VM2_MAC
    routes = lab.run("vm1", ["ip", "route", "show", "default"]).stdout
    assert f"via {ROUTER_GUEST_IP} dev eth0" in routes


def test_hosts_do_not_forward_and_ipv6_is_off_everywhere(lab: Lab) -> None:
    for role in ("vm1", "vm2", "up", "ctl", "vr"):
        assert lab.run(role, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "0"
    for role in lab.roles:
        nic = "brguest" if role == "sw" else "eth0"
        assert lab.run(role, ["sysctl", "-n", f"net.ipv6.conf.{nic}.disable_ipv6"]).stdout.strip() == "1"
        assert "inet6" not in lab.run(role, ["ip", "addr"]).stdout


def test_vms_can_be_left_without_addresses_for_dhcp(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(vm_static_addresses=False)
    for vm in ("vm1", "vm2"):
        assert ipv4_addresses(lab, vm) == ["127.0.0.1/8"]
        assert "UP" in link(lab, vm, "eth0")["flags"]
    assert lab.run("vm1", ["ip", "route", "show", "default"]).stdout == ""


def test_two_routers_share_guest_public_and_control_segments(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(routers=2)
    assert link(lab, "vr2", "eth0")["address"] == ROUTER_MACS["vr2"]["eth0"]
    # A redundant pair shares its public MAC, as CloudStack's does.
    assert link(lab, "vr2", "eth2")["address"] == link(lab, "vr", "eth2")["address"]
    add_address(lab, "vr", f"{CONTROL_ROUTER_IP}/16", "eth1")
    add_address(lab, "vr2", f"{CONTROL_ROUTER2_IP}/16", "eth1")
    add_address(lab, "vr2", "192.0.2.3/24", "eth0")
    assert ping(lab, "ctl", CONTROL_ROUTER_IP)
    assert ping(lab, "ctl", CONTROL_ROUTER2_IP)
    assert ping(lab, "vm1", "192.0.2.3")


# --- traffic helpers ---

def test_tcp_server_reports_the_client_address_it_saw(lab: Lab) -> None:
    with TcpServer(lab, "vm2", 8080) as server:
        result = tcp_connect(lab, "vm1", VM2_IP, 8080)
        assert result.ok
        assert result.peer_seen == VM1_IP
        assert server.peers() == [VM1_IP]


def test_tcp_connect_to_a_closed_port_fails_with_a_reason(lab: Lab) -> None:
    result = tcp_connect(lab, "vm1", VM2_IP, 8081, timeout=NO_REPLY_TIMEOUT)
    assert not result.ok
    assert result.peer_seen is None
    assert "ConnectionRefused" in (result.error or "")


def test_upstream_originates_from_each_internet_source(lab: Lab) -> None:
    # Hand-made minimal router (the agent's job later): public address, route back.
    add_address(lab, "vr", f"{SOURCE_NAT_IP}/24", "eth2")
    lab.run("vr", ["ip", "route", "add", "203.0.113.0/24", "via", PUBLIC_GATEWAY])
    with TcpServer(lab, "vr", 0) as server:
        seen = [tcp_connect(lab, "up", SOURCE_NAT_IP, server.port, source=source).peer_seen
                for source in UPSTREAM_SOURCES]
    assert seen == list(UPSTREAM_SOURCES)
    assert ping(lab, "up", SOURCE_NAT_IP, source=UPSTREAM_SOURCES[1])


def test_udp_probe_round_trip(lab: Lab) -> None:
    with TcpServer(lab, "vm2", 5353, udp=True) as server:
        result = udp_probe(lab, "vm1", VM2_IP, 5353)
        assert (result.ok, result.peer_seen) == (True, VM1_IP)
        assert server.peers("udp") == [VM1_IP]
    assert not udp_probe(lab, "vm1", VM2_IP, 5353, timeout=NO_REPLY_TIMEOUT).ok


def test_held_connection_notices_when_the_path_breaks(lab: Lab) -> None:
    with TcpServer(lab, "vm2", 8080), HeldConnection(lab, "vm1", VM2_IP, 8080, timeout=1.0) as held:
        assert held.peer_seen == VM1_IP
        assert held.alive()
        lab.run("vm2", ["ip", "link", "set", "eth0", "down"])
        assert not held.alive()


def test_run_raises_with_the_commands_stderr(lab: Lab) -> None:
    with pytest.raises(LabCommandError, match="Cannot find device"):
        lab.run("vr", ["ip", "link", "set", "eth9", "up"])


def test_ping_from_an_address_the_host_lacks_is_an_error_not_a_lost_reply(lab: Lab) -> None:
    with pytest.raises(LabCommandError, match="Cannot assign requested address"):
        ping(lab, "vm1", VM2_IP, source=UPSTREAM_SOURCES[0])


# --- lifecycle ---

def test_down_leaves_no_namespace_process_or_link_behind() -> None:
    root_links_before = root_namespace_links()
    lab = Lab(f"tdown{os.getpid() % 10000}")
    started: set[int] = set()
    try:
        lab.up()
        assert lab.exists()
        assert root_namespace_links() == root_links_before
        server = TcpServer(lab, "vm2", 8080).start()
        sleeper = lab.popen("up", ["sleep", "60"])
        # A daemon that detaches from its parent, as dnsmasq does: only a namespace scan finds it.
        daemon = lab.run("vr", ["/usr/bin/python3", "-c",
                                "import os, time\n"
                                "if os.fork(): os._exit(0)\n"
                                "os.setsid()\n"
                                "if os.fork(): os._exit(0)\n"
                                "print(os.getpid(), flush=True)\n"
                                "os.close(1); os.close(2)\n"
                                "time.sleep(60)\n"])
        daemon_pid = int(daemon.stdout)
        started = {server.pid or 0, sleeper.pid, daemon_pid}
        assert started <= set(lab.pids())
    finally:
        lab.down()
    assert not lab.exists()
    assert lab_namespaces(lab.prefix) == []
    assert lab.tracked_pids == []
    assert started and not [pid for pid in started if _alive(pid)]
    assert root_namespace_links() == root_links_before


def test_up_replaces_leftovers_of_the_same_prefix(lab: Lab) -> None:
    stale_process = lab.popen("vm1", ["sleep", "60"])
    again = Lab(lab.prefix)
    again.up()  # as a crashed run's successor would
    assert again.exists()
    assert stale_process.wait(timeout=5) is not None
    assert ping(again, "vm1", VM2_IP)


def test_build_and_teardown_are_fast() -> None:
    lab = Lab(f"tfast{os.getpid() % 10000}")
    started = time.monotonic()
    try:
        lab.up()
    finally:
        lab.down()
    elapsed = time.monotonic() - started
    # The target is well under a second; the bound is loose so a busy CI host passes.
    assert elapsed < 5, f"lab build and teardown took {elapsed:.2f}s"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --- sample pushes (pure; here because they describe this lab's network) ---

def test_sample_batch_cfg_has_cloudstack_layout() -> None:
    items = sample.named(sample.ips(), sample.guestnetwork(),
                         sample.forward_rules(sample.forward_rule(SOURCE_NAT_IP, 2222, VM1_IP, 22)))
    text = sample.batch_cfg(items)
    lines = text.splitlines()
    assert lines[:4] == ["#Apache CloudStack Virtual Router Config File", "<version>", "1.0", "</version>"]
    first_name = items[0][0]
    assert re.fullmatch(r"ip_associations\.json\.[0-9a-f-]{36}", first_name)
    assert lines[4:10] == ["<file>", f"/var/cache/cloud/{first_name}", sample.wire_json(items[0][1]),
                           "</file>", "<script>", f"/opt/cloud/bin/update_config.py {first_name}"]
    assert json.loads(lines[6])["ip_address"][0]["first_i_p"] is True
    assert text.count("<file>") == text.count("<script>") == 3
    assert text.endswith("</script>\n")
    monitor = sample.named(sample.monitor_service())  # delete_from_processed_cache: true
    assert f"/opt/cloud/bin/update_config.py {monitor[0][0]} false\n" in sample.batch_cfg(monitor)


def test_sample_cmdline_values_are_all_strings() -> None:
    config = sample.cmdline()["cmd_line"]
    assert all(isinstance(value, str) for value in config.values())
    assert (config["type"], config["eth1ip"], config["gateway"]) == ("router", CONTROL_ROUTER_IP, PUBLIC_GATEWAY)
    assert sample.cmdline(router=2)["cmd_line"]["eth1ip"] == CONTROL_ROUTER2_IP
