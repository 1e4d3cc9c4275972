"""DHCP and DNS for guest VMs, proven with a real dhclient and real DNS queries."""

from __future__ import annotations

import json
import signal
import os
import time

import pytest

from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.dhcp import DhcpClient, dig, process_exists
from vragent.lab.topology import (PUBLIC_GATEWAY, ROUTER_GUEST_IP, SOURCE_NAT_IP, VM1_IP, VM1_MAC, VM2_IP,
                                  VM2_MAC)

GUEST_MTU = 1450


def dhcp_entry(mac: str, ip: str, name: str, remove: bool = False, default_entry: bool = True) -> dict:
    return {"type": "dhcpentry", "host_name": name, "mac_address": mac, "ipv4_address": ip,
            "dns_addresses": ROUTER_GUEST_IP, "default_gateway": ROUTER_GUEST_IP, "static_routes": "",
            "default_entry": default_entry, "remove": remove, "delete_from_processed_cache": False}


def guest_network_with_mtu() -> dict:
    return {**sample.guestnetwork(), "mtu": GUEST_MTU}


@pytest.fixture
def network(make_lab, tmp_path):
    lab = make_lab(vm_static_addresses=False)
    router = RouterAgent(lab, tmp_path / "root")
    result = router.apply(sample.cmdline(), sample.ips(), sample.egress_allowed(), guest_network_with_mtu(),
                          dhcp_entry(VM1_MAC, VM1_IP, "web-01"), dhcp_entry(VM2_MAC, VM2_IP, "db-01"))
    assert result.returncode == 0, result.errors
    return lab, router


def dnsmasq_pid(router: RouterAgent) -> int:
    return int((router.root / "run/vragent/dnsmasq.pid").read_text().split()[0])


def step_actions(result) -> list[str]:
    return [s["summary"] for s in result.steps if s["kind"] == "service"]


def test_a_guest_gets_its_lease_hostname_gateway_dns_and_mtu_on_the_first_discover(network, tmp_path):
    lab, router = network
    lease = DhcpClient(lab, "vm1", tmp_path).obtain()
    assert lease.ip == VM1_IP, lease.log
    assert lease.discovers == 1, lease.log
    assert lease.options["new_host_name"] == "web-01"
    assert lease.options["new_routers"] == ROUTER_GUEST_IP
    assert lease.options["new_domain_name_servers"] == ROUTER_GUEST_IP
    assert lease.options["new_domain_name"] == "lab.internal"
    assert lease.options["new_interface_mtu"] == str(GUEST_MTU)
    # The lease really configured the VM: its traffic leaves through the router's source NAT.
    from vragent.lab.traffic import TcpServer, tcp_connect
    with TcpServer(lab, "up", 8080):
        assert tcp_connect(lab, "vm1", PUBLIC_GATEWAY, 8080).peer_seen == SOURCE_NAT_IP


def test_dns_resolves_guest_names_on_the_guest_side_and_never_on_the_public_ip(network, tmp_path):
    lab, router = network
    DhcpClient(lab, "vm1", tmp_path).obtain()
    assert dig(lab, "vm1", ROUTER_GUEST_IP, "db-01.lab.internal") == [VM2_IP]
    assert dig(lab, "vm1", ROUTER_GUEST_IP, "db-01") == [VM2_IP]
    # No open resolver: the public side gets no answer, and dnsmasq does not even listen there.
    router.apply(sample.firewall_rules(sample.firewall_rule(1, protocol="udp", ports=53)))
    assert dig(lab, "up", SOURCE_NAT_IP, "db-01.lab.internal") == []
    sockets = lab.run("vr", ["ss", "-lnu"]).stdout
    assert f"{ROUTER_GUEST_IP}:53" in sockets and f"{SOURCE_NAT_IP}:53" not in sockets


def test_adding_changing_and_removing_vms_only_signals_dnsmasq(network, tmp_path):
    lab, router = network
    pid = dnsmasq_pid(router)
    client = DhcpClient(lab, "vm1", tmp_path)
    assert client.obtain().ip == VM1_IP
    added = router.apply(dhcp_entry("02:00:00:00:00:99", "192.0.2.99", "new-vm"))
    changed = router.apply(dhcp_entry(VM2_MAC, "192.0.2.42", "db-01"))
    removed = router.apply(dhcp_entry("02:00:00:00:00:99", "192.0.2.99", "new-vm", remove=True))
    for result in (added, changed, removed):
        assert result.returncode == 0, result.errors
        assert [a.split(":")[1].split()[0] for a in step_actions(result)] == ["reload"], result.steps
    assert dnsmasq_pid(router) == pid and process_exists(pid)
    hosts = (router.root / "etc/vragent/dnsmasq/dhcphosts").read_text()
    assert hosts.count(VM2_MAC) == 1 and "192.0.2.42" in hosts and "192.0.2.99" not in hosts
    names = (router.root / "etc/vragent/dnsmasq/hosts").read_text()
    assert names.count("db-01") == 1
    # A renewing client keeps getting ACKs across all of that.
    client.stop()
    renewal = client.obtain()
    assert renewal.ip == VM1_IP and "DHCPACK" in renewal.log and "DHCPNAK" not in renewal.log
    # The changed VM gets its new address.
    assert DhcpClient(lab, "vm2", tmp_path).obtain().ip == "192.0.2.42"


def test_a_removed_vms_ip_goes_to_a_new_mac_on_its_first_discover(network, tmp_path):
    lab, router = network
    client = DhcpClient(lab, "vm1", tmp_path)
    assert client.obtain().ip == VM1_IP
    client.stop()
    result = router.apply(dhcp_entry(VM1_MAC, VM1_IP, "web-01", remove=True))
    assert any(s["kind"] == "dhcp" for s in result.steps), result.steps  # the lease was released
    new_mac = "02:00:00:00:00:77"
    assert router.apply(dhcp_entry(new_mac, VM1_IP, "web-02")).returncode == 0
    lab.run("vm1", ["ip", "link", "set", "eth0", "address", new_mac])
    fresh = DhcpClient(lab, "vm1", tmp_path / "new")
    lease = fresh.obtain()
    assert lease.ip == VM1_IP and lease.discovers == 1, lease.log
    assert lease.options["new_host_name"] == "web-02"


def test_a_secondary_nic_gets_no_router_or_dns(network, tmp_path):
    lab, router = network
    assert router.apply(dhcp_entry(VM2_MAC, VM2_IP, "db-01", default_entry=False)).returncode == 0
    lease = DhcpClient(lab, "vm2", tmp_path).obtain()
    assert lease.ip == VM2_IP
    assert not lease.options.get("new_routers") and not lease.options.get("new_domain_name_servers")


def test_a_second_apply_writes_nothing_and_signals_nothing(network):
    lab, router = network
    pid = dnsmasq_pid(router)
    config_dir = router.root / "etc/vragent/dnsmasq"
    mtimes = {p.name: p.stat().st_mtime_ns for p in config_dir.iterdir()}
    for again in router.reapply(sample.cmdline(), sample.ips(), sample.egress_allowed(), guest_network_with_mtu(),
                                dhcp_entry(VM1_MAC, VM1_IP, "web-01"), dhcp_entry(VM2_MAC, VM2_IP, "db-01")):
        assert again.result["status"] == "unchanged" and again.steps == []
    assert {p.name: p.stat().st_mtime_ns for p in config_dir.iterdir()} == mtimes
    assert dnsmasq_pid(router) == pid


def test_a_candidate_that_fails_dnsmasq_test_leaves_the_old_config_serving(network, tmp_path):
    lab, router = network
    pid = dnsmasq_pid(router)
    conf = router.root / "etc/vragent/dnsmasq/dnsmasq.conf"
    before = conf.read_text()
    document = router.show()
    document["dhcp"]["dnsmasq_options"] = ["dhcp-range=tag:nowhere,not-an-address,static"]
    document["dhcp"]["hosts"].append({"mac": "02:00:00:00:00:55", "ip": "192.0.2.55", "hostname": "late"})
    replacement = tmp_path / "state.json"
    replacement.write_text(json.dumps(document))
    result = router.apply(replacement)
    assert result.returncode == 1 and result.result["status"] == "failed"
    assert "dnsmasq" in "\n".join(result.errors)
    assert conf.read_text() == before
    assert (conf.parent / "dnsmasq.conf.failed").exists()
    assert "192.0.2.55" not in (conf.parent / "dhcphosts").read_text()
    assert dnsmasq_pid(router) == pid
    assert DhcpClient(lab, "vm1", tmp_path).obtain().ip == VM1_IP


def test_hostname_injection_is_rejected_with_its_path(network):
    lab, router = network
    config_dir = router.root / "etc/vragent/dnsmasq"
    before = {p.name: p.read_text() for p in config_dir.iterdir()}
    result = router.apply(dhcp_entry("02:00:00:00:00:66", "192.0.2.66", "evil\nrm -rf /"),
                          dhcp_entry("02:00:00:00:00:67", "192.0.2.67", "a,b"))
    assert result.returncode == 2
    # A line break is refused as such (fields.text_problem) before the host-name rules are asked.
    assert any("$.host_name: holds a line break ('\\n' at offset 4)" in e for e in result.errors), result.errors
    assert any(e.endswith("$.host_name: 'a,b' is not a host name (letters, digits, '-', '_', "
                          "dot-separated labels of 1-63)") for e in result.errors), result.errors
    assert sum(".host_name:" in e for e in result.errors) == 2
    assert {p.name: p.read_text() for p in config_dir.iterdir()} == before


def test_a_dead_dnsmasq_is_restarted_by_the_supervisor(network, tmp_path):
    lab, router = network
    pid = dnsmasq_pid(router)
    os.kill(pid, signal.SIGKILL)
    supervisor = lab.popen("vr", router.command("supervise", "--interval", "0.2"))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                new_pid = dnsmasq_pid(router)
            except (OSError, ValueError):
                new_pid = None
            if new_pid and new_pid != pid and process_exists(new_pid):
                break
            time.sleep(0.1)
        else:
            pytest.fail("dnsmasq was not restarted")
        assert DhcpClient(lab, "vm1", tmp_path).obtain().ip == VM1_IP
    finally:
        lab.terminate(supervisor)
