"""A shared network's VR (cmdline type dhcpsrvr) with an IP alias for a second IP range,
proven with a real ISC dhclient, real DNS queries and real HTTP from the VMs' namespaces.

The lab has the topology of a shared network: the VMs' gateway is another machine on the
guest segment ("gw", holding both ranges' gateways and an "internet" host on its lo); the
VR is just a host there, serving DHCP, DNS, metadata and passwords.
"""

from __future__ import annotations

import time

import pytest

from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.dhcp import DhcpClient, dig, process_exists
from vragent.lab.guestdata import metadata, password
from vragent.lab.topology import (ALIAS_GATEWAY, ALIAS_NETMASK, ALIAS_ROUTER_IP, ALIAS_VM_IP, CONTROL_ROUTER_IP,
                                  SHARED_GATEWAY, SHARED_ROUTER_IP, SHARED_UPSTREAM_HOST, VM1_IP, VM1_MAC, VM2_MAC)
from vragent.lab.traffic import TcpServer, tcp_connect

PASSWORD = "Sh4red-pw"


def vm1_entry(remove: bool = False) -> dict:
    return sample.dhcp_entry(VM1_MAC, VM1_IP, "web-01", SHARED_GATEWAY, SHARED_ROUTER_IP, remove)


def vm2_entry(remove: bool = False) -> dict:
    """vm2 lives in the second IP range, served from the VR's alias."""
    return sample.dhcp_entry(VM2_MAC, ALIAS_VM_IP, "db-01", ALIAS_GATEWAY, ALIAS_ROUTER_IP, remove)


def network_pushes() -> list[dict]:
    return [sample.shared_cmdline(), sample.ip_aliases(), sample.dhcpconfig(), vm1_entry(), vm2_entry(),
            sample.vmdata(VM1_IP, "web-01", b"#cloud-config\n", instance_id="i-2-11-VM"),
            sample.vmdata(ALIAS_VM_IP, "db-01", None, instance_id="i-2-12-VM")]


def assert_converged(router: RouterAgent, *payloads) -> None:
    for again in router.reapply(*payloads):
        assert again.returncode == 0 and again.result["status"] == "unchanged" and again.steps == [], again.steps


@pytest.fixture
def shared(make_lab, tmp_path):
    lab = make_lab(router_type="dhcpsrvr", vm_static_addresses=False)
    router = RouterAgent(lab, tmp_path / "root")
    result = router.apply(*network_pushes())
    assert result.returncode == 0, result.errors
    assert_converged(router, *network_pushes())
    return lab, router


def test_a_vm_gets_its_lease_with_the_shared_networks_gateway_and_the_vr_as_dns(shared, tmp_path):
    lab, router = shared
    lease = DhcpClient(lab, "vm1", tmp_path).obtain()
    assert lease.ip == VM1_IP, lease.log
    assert lease.discovers == 1, lease.log
    assert lease.options["new_routers"] == SHARED_GATEWAY  # the network's router, never the VR
    assert lease.options["new_domain_name_servers"] == SHARED_ROUTER_IP
    assert lease.options["new_subnet_mask"] == "255.255.255.0"
    assert lease.options["new_host_name"] == "web-01"
    assert lease.options["new_domain_name"] == sample.SHARED_DOMAIN
    # The VR resolves both ranges' VMs and names itself data-server.
    assert dig(lab, "vm1", SHARED_ROUTER_IP, f"db-01.{sample.SHARED_DOMAIN}") == [ALIAS_VM_IP]
    assert dig(lab, "vm1", SHARED_ROUTER_IP, "data-server") == [SHARED_ROUTER_IP]
    # The lease really configured the VM: it reaches the outside through the shared
    # network's gateway, with its own address (nobody NATs it).
    with TcpServer(lab, "gw", 8080, bind=SHARED_UPSTREAM_HOST):
        assert tcp_connect(lab, "vm1", SHARED_UPSTREAM_HOST, 8080).peer_seen == VM1_IP
    # The VR's own default route and DNS come from its cmdline.
    assert lab.run("vr", ["ip", "-4", "route", "show", "default"]).stdout.split()[:5] == \
        ["default", "via", SHARED_GATEWAY, "dev", "eth0"]
    assert (router.root / "etc/vragent/dnsmasq/resolv.conf").read_text().endswith(f"nameserver {SHARED_GATEWAY}\n")


def test_a_vm_reads_its_metadata_and_password_from_the_vr(shared):
    lab, router = shared
    lab.run("vm1", ["ip", "addr", "add", f"{VM1_IP}/24", "dev", "eth0"])
    user_data, instance = metadata(lab, "vm1", SHARED_ROUTER_IP, "/latest/user-data", "/latest/meta-data/instance-id")
    assert (user_data.status, user_data.body) == (200, b"#cloud-config\n")
    assert (instance.status, instance.text) == (200, "i-2-11-VM")
    assert router.apply(sample.vmpassword(VM1_IP, PASSWORD)).returncode == 0
    first, ack, again = password(lab, "vm1", SHARED_ROUTER_IP, "send_my_password", "saved_password",
                                 "send_my_password")
    assert (first.status, first.text) == (200, PASSWORD)
    assert (ack.text, again.text) == ("saved_password", "saved_password")


def test_a_vm_in_the_alias_range_gets_that_ranges_gateway_netmask_dns_and_data(shared, tmp_path):
    lab, router = shared
    lease = DhcpClient(lab, "vm2", tmp_path).obtain()
    assert lease.ip == ALIAS_VM_IP, lease.log
    assert lease.discovers == 1, lease.log
    assert lease.options["new_routers"] == ALIAS_GATEWAY
    assert lease.options["new_subnet_mask"] == ALIAS_NETMASK  # the alias's /25, not the guest /24
    assert lease.options["new_domain_name_servers"] == ALIAS_ROUTER_IP
    assert lease.options["new_dhcp_server_identifier"] == ALIAS_ROUTER_IP
    assert dig(lab, "vm2", ALIAS_ROUTER_IP, f"web-01.{sample.SHARED_DOMAIN}") == [VM1_IP]
    # data-server is the VR's address in the asker's own subnet.
    assert dig(lab, "vm2", ALIAS_ROUTER_IP, "data-server") == [ALIAS_ROUTER_IP]
    (instance,) = metadata(lab, "vm2", ALIAS_ROUTER_IP, "/latest/meta-data/instance-id")
    assert (instance.status, instance.text) == (200, "i-2-12-VM")
    assert router.apply(sample.vmpassword(ALIAS_VM_IP, PASSWORD)).returncode == 0
    (answer,) = password(lab, "vm2", ALIAS_ROUTER_IP, "send_my_password")
    assert (answer.status, answer.text) == (200, PASSWORD)
    with TcpServer(lab, "gw", 8080, bind=SHARED_UPSTREAM_HOST):
        assert tcp_connect(lab, "vm2", SHARED_UPSTREAM_HOST, 8080).peer_seen == ALIAS_VM_IP


def test_the_vr_forwards_nothing_and_accepts_only_its_services(shared):
    lab, router = shared
    lab.run("vm1", ["ip", "addr", "add", f"{VM1_IP}/24", "dev", "eth0"])
    # A VM that tries the VR as its gateway gets nowhere: it is not on the data path.
    lab.run("vm1", ["ip", "route", "replace", "default", "via", SHARED_ROUTER_IP])
    with TcpServer(lab, "gw", 8080, bind=SHARED_UPSTREAM_HOST) as server:
        assert not tcp_connect(lab, "vm1", SHARED_UPSTREAM_HOST, 8080, timeout=1.0).ok
        assert server.peers() == []
    lab.run("vm1", ["ip", "route", "replace", "default", "via", SHARED_GATEWAY])
    # No DNS on the control side: dnsmasq serves the guest NIC only.
    assert dig(lab, "ctl", CONTROL_ROUTER_IP, "web-01") == []
    # SSH 3922 only from the control NIC; other ports closed to guests.
    with TcpServer(lab, "vr", 3922):
        assert tcp_connect(lab, "ctl", CONTROL_ROUTER_IP, 3922).ok
        assert not tcp_connect(lab, "vm1", SHARED_ROUTER_IP, 3922, timeout=1.0).ok
    rules = router.iptables_save()
    assert ":FORWARD DROP" in rules
    assert not any(word in rules for word in ("SNAT", "DNAT", "vr-egress", "vr-fw-", "vr-FORWARD"))
    assert lab.run("vr", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "0"


@pytest.mark.parametrize("payload", [
    sample.forward_rules(sample.forward_rule(SHARED_ROUTER_IP, 2222, VM1_IP, 22)),
    sample.staticnat_rules(sample.staticnat_rule(SHARED_ROUTER_IP, VM1_IP)),
    sample.firewall_rules(sample.firewall_rule(1, ports=22, public_ip=SHARED_ROUTER_IP)),
    sample.ips(sample.ip_entry("198.51.100.10", source_nat=True)),
], ids=["forwardrules", "staticnatrules", "firewallrules", "ips"])
def test_nat_firewall_and_public_ip_pushes_are_refused_and_change_nothing(shared, payload):
    lab, router = shared
    before_rules, before_state = router.iptables_save(), router.show()
    result = router.apply(payload)
    assert result.returncode == 2, result.result
    assert any(".json" in e and ":$.type: " in e and "dhcpsrvr" in e for e in result.errors), result.errors
    assert router.iptables_save() == before_rules and router.show() == before_state


def test_revoking_the_alias_takes_its_address_range_rules_and_listener_away(shared, tmp_path):
    lab, router = shared
    # The range's VM goes first (a range with VMs cannot be deleted), then its alias:
    # DeleteIpAliasCommand sends the revoked alias (and any still active).
    revoke = sample.batch_cfg(sample.named(vm2_entry(remove=True), sample.ip_aliases(sample.ip_alias(revoke=True))))
    result = router.apply(revoke)
    assert result.returncode == 0, result.errors
    assert f"{ALIAS_ROUTER_IP}/" not in lab.run("vr", ["ip", "-4", "addr", "show", "dev", "eth0"]).stdout
    assert "10.2.0.0" not in (router.root / "etc/vragent/dnsmasq/dnsmasq.conf").read_text()
    assert "alias_" not in (router.root / "etc/vragent/dnsmasq/dhcpopts").read_text()
    assert "10.2.0." not in router.iptables_save()
    listening = lab.run("vr", ["ss", "-ltn"]).stdout
    assert f"{SHARED_ROUTER_IP}:80 " in listening and f"{ALIAS_ROUTER_IP}:80 " not in listening
    assert "ip_aliases" not in router.show()
    # vm2 gets no lease any more; vm1's range still works.
    lab.run("vm2", ["ip", "addr", "add", f"{ALIAS_VM_IP}/25", "dev", "eth0"])
    assert dig(lab, "vm2", ALIAS_ROUTER_IP, "web-01") == []
    assert DhcpClient(lab, "vm1", tmp_path).obtain().ip == VM1_IP
    assert_converged(router, revoke)


def test_a_simulated_reboot_brings_the_shared_network_router_back_with_no_drift(shared, tmp_path):
    from tests.lab.test_boot import addresses, boot, status
    from tests.lab.test_netfilter import tables_of

    lab, router = shared
    committed_tables, committed_addresses = tables_of(router.iptables_save()), addresses(lab)
    report = status(router)
    assert report["drift"] == [] and all(d["healthy"] for d in report["daemons"].values()), report
    # What a reboot leaves: no daemons, empty tables, no addresses (a dhcpsrvr has no eth2).
    for pidfile in (router.root / "run/vragent").glob("*.pid"):
        lab.run("vr", ["kill", "-9", pidfile.read_text().split()[0]], check=False)
    for table in ("raw", "mangle", "nat", "filter"):
        lab.run("vr", ["iptables", "-w", "-t", table, "-F"])
        lab.run("vr", ["iptables", "-w", "-t", table, "-X"])
    for device in ("eth0", "eth1"):
        lab.run("vr", ["ip", "addr", "flush", "dev", device])
    assert status(router)["drift"], "a flushed router must show drift"

    restored = boot(lab, router)
    assert restored.returncode == 0, restored.stderr
    assert tables_of(router.iptables_save()) == committed_tables
    assert addresses(lab) == committed_addresses
    report = status(router)
    assert report["drift"] == [] and all(d["healthy"] for d in report["daemons"].values()), report
    assert DhcpClient(lab, "vm2", tmp_path).obtain().options["new_routers"] == ALIAS_GATEWAY


def dnsmasq_pid(router: RouterAgent) -> int:
    return int((router.root / "run/vragent/dnsmasq.pid").read_text().split()[0])


def test_vms_coming_and_going_in_an_alias_subnet_only_signal_dnsmasq_and_release_their_leases(shared, tmp_path):
    lab, router = shared
    pid = dnsmasq_pid(router)
    client = DhcpClient(lab, "vm2", tmp_path)
    assert client.obtain().ip == ALIAS_VM_IP
    client.stop()
    removed = router.apply(vm2_entry(remove=True))
    assert removed.returncode == 0, removed.errors
    assert any(s["kind"] == "dhcp" for s in removed.steps), removed.steps  # the lease was released
    new_mac = "02:00:00:00:00:77"
    added = router.apply(sample.dhcp_entry(new_mac, ALIAS_VM_IP, "db-02", ALIAS_GATEWAY, ALIAS_ROUTER_IP))
    assert added.returncode == 0, added.errors
    for result in (removed, added):
        actions = [s["summary"] for s in result.steps if s["kind"] == "service"]
        assert actions and all("reload" in a and "restart" not in a for a in actions), result.steps
    assert dnsmasq_pid(router) == pid
    # The released address goes to the new MAC on its first DISCOVER, with its subnet's options.
    lab.run("vm2", ["ip", "link", "set", "eth0", "address", new_mac])
    lease = DhcpClient(lab, "vm2", tmp_path / "new").obtain()
    assert (lease.ip, lease.discovers, lease.options["new_host_name"]) == (ALIAS_VM_IP, 1, "db-02"), lease.log
    assert lease.options["new_routers"] == ALIAS_GATEWAY


def test_a_secondary_nic_gets_no_router_or_dns_and_later_signals_do_not_kill_dnsmasq(shared, tmp_path):
    lab, router = shared
    secondary = {**vm2_entry(), "default_entry": False}
    assert router.apply(secondary).returncode == 0
    lease = DhcpClient(lab, "vm2", tmp_path).obtain()
    assert lease.ip == ALIAS_VM_IP, lease.log
    assert not lease.options.get("new_routers") and not lease.options.get("new_domain_name_servers")
    pid = dnsmasq_pid(router)
    # Another VM comes (a SIGHUP) while the secondary NIC holds its lease: dnsmasq 2.90
    # segfaults here when that lease's host line sets its tag in the re-read hosts file.
    added = router.apply(sample.dhcp_entry("02:00:00:00:00:77", "10.2.0.77", "db-02", ALIAS_GATEWAY, ALIAS_ROUTER_IP))
    assert added.returncode == 0, added.errors
    assert [s["summary"].split(":")[1].split()[0] for s in added.steps if s["kind"] == "service"] == ["reload"]
    time.sleep(1)
    assert process_exists(pid) and dnsmasq_pid(router) == pid
    removed = router.apply({**secondary, "remove": True})  # its tag leaves dnsmasq.conf: a restart
    assert removed.returncode == 0, removed.errors
    pid = dnsmasq_pid(router)
    assert router.apply(vm1_entry(remove=True)).returncode == 0  # one more signal
    time.sleep(1)
    assert process_exists(pid) and dnsmasq_pid(router) == pid
    assert dig(lab, "vm2", ALIAS_ROUTER_IP, "db-02") == ["10.2.0.77"]
