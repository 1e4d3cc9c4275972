"""Metadata, user-data and passwords for guest VMs, read over real HTTP from the VMs' namespaces
the way cloud-init's CloudStack datasource and cloudbase-init read them."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.dhcp import dig, process_exists
from vragent.lab.guestdata import metadata, password
from vragent.lab.topology import ROUTER_GUEST_IP, SOURCE_NAT_IP, VM1_IP, VM1_MAC, VM2_IP, VM2_MAC

USERDATA = b"#cloud-config\npackages: [htop]\n\x00\xff binary tail"
KEYS = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF0x user@laptop\nssh-rsa AAAAB3NzaC1yc2E second@key"
PASSWORD = "Xk3r9-pW"


def dhcp_entry(mac: str, ip: str, name: str) -> dict:
    return {"type": "dhcpentry", "host_name": name, "mac_address": mac, "ipv4_address": ip,
            "dns_addresses": ROUTER_GUEST_IP, "default_gateway": ROUTER_GUEST_IP, "static_routes": "",
            "default_entry": True, "remove": False, "delete_from_processed_cache": False}


def network_pushes() -> list[dict]:
    return [sample.cmdline(), sample.ips(), sample.guestnetwork(),
            dhcp_entry(VM1_MAC, VM1_IP, "web-01"), dhcp_entry(VM2_MAC, VM2_IP, "db-01"),
            sample.vmdata(VM1_IP, "web-01", USERDATA, instance_id="i-2-11-VM", public_keys=KEYS),
            sample.vmdata(VM2_IP, "db-01", None, instance_id="i-2-12-VM")]


def server_pid(router: RouterAgent) -> int:
    return int((router.root / "run/vragent/metadata.pid").read_text().split()[0])


def assert_converged(router: RouterAgent, *payloads) -> None:
    for again in router.reapply(*payloads):
        assert again.returncode == 0 and again.result["status"] == "unchanged" and again.steps == [], again.steps


@pytest.fixture
def served(lab, tmp_path):
    router = RouterAgent(lab, tmp_path / "root")
    result = router.apply(*network_pushes())
    assert result.returncode == 0, result.errors
    assert_converged(router, *network_pushes())
    return lab, router


def test_a_vm_reads_its_user_data_manifest_and_keys_and_gets_404s_for_the_rest(served):
    lab, _ = served
    user_data, manifest, manifest_slash, instance, keys, shortcut, loud, query, missing, other = metadata(
        lab, "vm1", ROUTER_GUEST_IP, "/latest/user-data", "/latest/meta-data", "/latest/meta-data/",
        "/latest/meta-data/instance-id", "/latest/meta-data/public-keys/", "/latest/local-hostname",
        "/LATEST/Meta-Data/Local-IPv4", "/latest/instance-id?x=1", "/latest/meta-data/vm-id", "/index.html")
    assert (user_data.status, user_data.body) == (200, USERDATA)
    assert manifest.status == 200 and manifest.text.split() == ["local-hostname", "local-ipv4", "instance-id",
                                                                "public-keys"]
    assert manifest_slash.body == manifest.body
    # Every key the manifest lists answers (one 404 would abort cloud-init's whole crawl).
    listed = metadata(lab, "vm1", ROUTER_GUEST_IP, *(f"/latest/meta-data/{k}" for k in manifest.text.split()))
    assert [a.status for a in listed] == [200] * 4
    assert (instance.status, instance.text) == (200, "i-2-11-VM")
    assert keys.text == KEYS
    assert (shortcut.status, shortcut.text) == (200, "web-01")
    assert (loud.status, loud.text) == (200, VM1_IP)
    assert (query.status, query.text) == (200, "i-2-11-VM")
    assert missing.status == 404 and other.status == 404


def test_each_vm_gets_its_own_data_only(served):
    lab, _ = served
    user_data, hostname, instance = metadata(lab, "vm2", ROUTER_GUEST_IP, "/latest/user-data",
                                             "/latest/meta-data/local-hostname", "/latest/instance-id")
    assert user_data.status == 404  # VM2 has no user-data
    assert (hostname.text, instance.text) == ("db-01", "i-2-12-VM")


def test_a_vmdata_push_is_served_at_once_without_restarting_the_server(served):
    lab, router = served
    pid = server_pid(router)
    update = sample.vmdata(VM2_IP, "db-02", b"#!/bin/sh\necho hi\n")
    result = router.apply(update)
    assert result.returncode == 0, result.errors
    assert [s["summary"] for s in result.steps if s["kind"] == "service"] == ["metadata: reload (vmdata.json changed)"]
    user_data, hostname, gone = metadata(lab, "vm2", ROUTER_GUEST_IP, "/latest/user-data", "/latest/local-hostname",
                                         "/latest/meta-data/instance-id")
    assert (user_data.body, hostname.text, gone.status) == (b"#!/bin/sh\necho hi\n", "db-02", 404)
    assert server_pid(router) == pid
    assert_converged(router, update)


def test_the_password_is_handed_out_until_acknowledged_and_survives_a_restart(served):
    lab, router = served
    assert password(lab, "vm1", ROUTER_GUEST_IP, "send_my_password")[0].text == "saved_password"
    result = router.apply(sample.vmpassword(VM1_IP, PASSWORD))
    assert result.returncode == 0 and [s["kind"] for s in result.steps] == ["password"], result.steps
    # Not in the state, the step report or the log; the server's file is root's only.
    assert PASSWORD not in (router.root / "var/lib/vragent/state.json").read_text()
    assert PASSWORD not in json.dumps(result.result) + (router.root / "var/log/cloud-scripts.log").read_text()
    assert (router.root / "var/lib/vragent/vm-passwords.json").stat().st_mode & 0o777 == 0o600
    assert PASSWORD not in router.dry_run_text(sample.vmpassword(VM1_IP, "An0ther-one"))
    # Re-applied while it is still pending: nothing to do.
    assert_converged(router, sample.vmpassword(VM1_IP, PASSWORD))

    # The server restarts (killed; `vragent restore` brings it back): the password is still there.
    pid = server_pid(router)
    os.kill(pid, signal.SIGKILL)
    while process_exists(pid) and open(f"/proc/{pid}/stat").read().split()[2] != "Z":
        time.sleep(0.01)
    assert router.run("restore").returncode == 0
    assert server_pid(router) != pid

    mine, theirs, bad, none = password(lab, "vm1", ROUTER_GUEST_IP, "send_my_password", None, "bogus", None)
    assert (mine.status, mine.text) == (200, PASSWORD)
    assert (bad.status, bad.text) == (200, "bad_request") and none.text == "bad_request"
    assert password(lab, "vm2", ROUTER_GUEST_IP, "send_my_password")[0].text == "saved_password"
    # Asked again before the acknowledgement: the same password.
    again, ack, after = password(lab, "vm1", ROUTER_GUEST_IP, "send_my_password", "saved_password",
                                 "send_my_password")
    assert again.text == PASSWORD
    assert (ack.status, ack.text) == (200, "saved_password")
    assert (after.status, after.text) == (200, "saved_password")
    assert json.loads((router.root / "var/lib/vragent/vm-passwords.json").read_text()) == {}


def test_data_server_resolves_to_the_router_and_only_guests_reach_it(served):
    lab, router = served
    assert dig(lab, "vm1", ROUTER_GUEST_IP, "data-server") == [ROUTER_GUEST_IP]
    # The public side cannot reach it, even with an ingress rule opening port 80.
    assert router.apply(sample.firewall_rules(sample.firewall_rule(1, ports=80))).returncode == 0
    assert metadata(lab, "up", SOURCE_NAT_IP, "/latest/user-data", timeout=1)[0].status is None
    sockets = lab.run("vr", ["ss", "-ltn"]).stdout
    assert f"{ROUTER_GUEST_IP}:80 " in sockets and f"{ROUTER_GUEST_IP}:8080 " in sockets
    assert f"{SOURCE_NAT_IP}:80 " not in sockets and "0.0.0.0:80 " not in sockets


def test_a_full_resync_batch_with_metadata_password_and_monitoring_is_one_transaction(lab, tmp_path):
    router = RouterAgent(lab, tmp_path / "root")
    # Service monitoring on: the management server leaves disable_monitoring out (it sends
    # "false" only when router.monitor.enabled is off, the default).
    monitoring_on = {k: v for k, v in sample.monitor_service().items() if k != "disable_monitoring"}
    items = sample.named(*network_pushes(), sample.vmpassword(VM2_IP, PASSWORD), monitoring_on,
                         sample.firewall_rules(sample.firewall_rule(1, ports=22)))
    batch = sample.batch_cfg(items)
    result = router.apply(batch)
    assert result.returncode == 0 and result.result["status"] == "applied", result.errors
    assert password(lab, "vm2", ROUTER_GUEST_IP, "send_my_password")[0].text == PASSWORD
    assert metadata(lab, "vm1", ROUTER_GUEST_IP, "/latest/user-data")[0].body == USERDATA
    assert "[ssh]\nprocessname=sshd" in (router.root / "etc/monitor.conf").read_text()
    assert json.loads((router.root / "root/health_checks_data.json").read_text())["health_checks_enabled"] is True
    # The same batch again (with fresh file names) changes nothing: the password is still pending.
    assert_converged(router, sample.batch_cfg(sample.named(*(payload for _, payload in items))))
    # A bad entry anywhere refuses the whole batch and changes nothing.
    before = router.iptables_save()
    bad = sample.batch_cfg(sample.named(sample.vmdata("10.99.0.5", "stray"), sample.vmpassword(VM1_IP, "new-one")))
    refused = router.apply(bad)
    assert refused.returncode == 2
    assert any("vm_metadata.json" in e and "$.vm_ip_address: 10.99.0.5 is in no guest network" in e
               for e in refused.errors), refused.errors
    assert router.iptables_save() == before
    assert password(lab, "vm1", ROUTER_GUEST_IP, "send_my_password")[0].text == "saved_password"


def test_idle_connections_beyond_the_cap_are_closed_and_service_resumes(tmp_path, monkeypatch):
    """A guest holding many idle connections cannot make the server spawn a thread for each."""
    import socket
    import threading

    from vragent import metadata_server

    monkeypatch.setattr(metadata_server, "MAX_CONNECTIONS", 2)
    vms = metadata_server.Watched(tmp_path / "vmdata.json", metadata_server._read_vms)
    passwords = metadata_server.Watched(tmp_path / "passwords.json", lambda path: {})
    server = metadata_server.Listener(("127.0.0.1", 0), metadata_server.MetadataHandler, vms, passwords)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = server.server_address
    try:
        idle = [socket.create_connection(address, timeout=5) for _ in range(2)]
        time.sleep(0.2)  # both accepted and waiting for a request line
        refused = socket.create_connection(address, timeout=5)
        assert refused.recv(100) == b""  # closed at once, no thread spent
        refused.close()
        for connection in idle:
            connection.close()
        time.sleep(0.2)
        with socket.create_connection(address, timeout=5) as again:
            again.sendall(b"GET /latest/user-data HTTP/1.0\r\n\r\n")
            assert again.recv(100).startswith(b"HTTP/1.0 404")  # no data for 127.0.0.1
    finally:
        server.shutdown()
        server.server_close()
