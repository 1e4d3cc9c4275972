"""The scripts the management server runs on a VR, on a lab router vragent configured
(issue 14): each answers with the output VirtualRoutingResource (or the hypervisor
resource) parses. They run from /opt/cloud/bin as CloudStack's template and vragent's
package step leave it: CloudStack's own scripts where they work unchanged, vragent's shims
where they do not (packaging/IMAGE-BUILDERS.md, "What the management server runs")."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import zipfile

import pytest

from vragent.lab import sample, sample_lb as lb
from vragent.lab.agent import RouterAgent
from vragent.lab.cloudstack_peer import REPO, RELEASE, SIGNATURE, CloudStackRouter, missing_reason, peer_dir
from vragent.lab.topology import (EXTRA_PUBLIC_IPS, ROUTER_GUEST_IP, SOURCE_NAT_IP, VM1_IP, VM1_MAC, VM2_IP,
                                  VM2_MAC)
from vragent.lab.traffic import HeldConnection, TcpServer

pytestmark = pytest.mark.skipif(peer_dir() is None, reason=missing_reason())

LB_IP = EXTRA_PUBLIC_IPS[1]
LB_PORT = 2000


def base_pushes():
    return [sample.cmdline(), sample.ips(), sample.guestnetwork(),
            sample.dhcp_entry(VM1_MAC, VM1_IP, "web-01", ROUTER_GUEST_IP, ROUTER_GUEST_IP),
            sample.dhcp_entry(VM2_MAC, VM2_IP, "db-01", ROUTER_GUEST_IP, ROUTER_GUEST_IP),
            sample.vmpassword(VM1_IP, "Xk3r9-pW")]


@pytest.fixture
def routed(lab, tmp_path):
    agent = RouterAgent(lab, tmp_path / "root")
    applied = agent.apply(*base_pushes())
    assert applied.returncode == 0, applied.errors
    return agent, CloudStackRouter(lab, agent.root)


def test_get_haproxy_stats_reports_the_sessions_haproxy_really_holds(routed):
    agent, router = routed
    rule = lb.lb_rule(LB_IP, LB_PORT, [(VM1_IP, 7000), (VM2_IP, 7000)], http=False)
    opened = sample.firewall_rules(sample.firewall_rule(1, ports=LB_PORT, public_ip=LB_IP))
    assert agent.apply(opened, lb.loadbalancer(rule)).returncode == 0

    def stats() -> str:
        done = router.script("get_haproxy_stats.sh", LB_IP, str(LB_PORT))
        assert done.returncode == 0, done.stderr
        return done.stdout  # `echo -n`: the number alone, as AutoScale parses it

    def statuses() -> list[str]:
        raw = router.run(["sh", "-c", "echo 'show stat' | socat stdio unix-connect:/run/vragent/haproxy.sock"])
        return [row.split(",")[17] for row in raw.stdout.splitlines() if row.startswith(f"{rule.pool},{rule.pool}_")]

    with TcpServer(agent.lab, "vm1", 7000), TcpServer(agent.lab, "vm2", 7000):
        deadline = time.monotonic() + 15  # HAProxy's checks find both servers up (rise 2, inter 2 s)
        while statuses() != ["UP", "UP"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert statuses() == ["UP", "UP"]
        assert stats() == "0"
        held = [HeldConnection(agent.lab, "up", LB_IP, LB_PORT).open() for _ in range(6)]
        try:
            assert all(c.alive() for c in held)
            assert stats() == "3"  # six sessions over two UP servers
            for connection in held[:4]:
                connection.close()
            deadline = time.monotonic() + 5
            while stats() != "1" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert stats() == "1"
        finally:
            for connection in held:
                connection.close()
    # Without a load balancer vragent runs no HAProxy: no sessions, not an error.
    assert agent.apply(lb.loadbalancer()).returncode == 0
    assert stats() == "0"


def _mtu(agent, device):
    return int(agent.lab.run("vr", ["cat", f"/sys/class/net/{device}/mtu"]).stdout)


def test_an_mtu_change_is_desired_state_and_survives_the_next_push(routed):
    agent, router = routed
    done = router.script("update_interface_config.sh", SOURCE_NAT_IP, "24", "1400", "15")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert _mtu(agent, "eth2") == 1400
    guest = router.script("update_interface_config.sh", ROUTER_GUEST_IP, "24", "1450", "15")
    assert guest.returncode == 0 and _mtu(agent, "eth0") == 1450
    # Guests are told the new MTU too (DHCP option 26).
    assert "option:mtu,1450" in (agent.root / "etc/vragent/dnsmasq/dhcpopts").read_text()
    # The next pushes (rules, a VM) do not put the old MTU back.
    assert agent.apply(sample.firewall_rules(sample.firewall_rule(1, ports=22))).returncode == 0
    assert agent.apply(sample.vmpassword(VM2_IP, "other-pw")).returncode == 0
    assert (_mtu(agent, "eth2"), _mtu(agent, "eth0")) == (1400, 1450)
    for again in agent.reapply(sample.firewall_rules(sample.firewall_rule(1, ports=22))):
        assert again.returncode == 0 and again.steps == []
    # An address no NIC holds: the answer the Java side skips with a warning.
    missing = router.script("update_interface_config.sh", "203.0.113.99", "24", "1400", "15")
    assert missing.returncode == 1 and "Interface with IP 203.0.113.99 not found" in missing.stdout


def _get(agent, path: str) -> str:
    """What vm1 gets from the router's port 80: the body, or the HTTP status of an error."""
    script = ("import hashlib, sys, urllib.error, urllib.request\n"
              "try:\n"
              f" body = urllib.request.urlopen('http://{ROUTER_GUEST_IP}{path}', timeout=5).read()\n"
              " print(body.decode() if len(body) < 200 else hashlib.sha256(body).hexdigest(), end='')\n"
              "except urllib.error.HTTPError as error:\n"
              " print(error.code, end='')\n")
    return agent.lab.run("vm1", ["python3", "-c", script]).stdout


def test_cks_iso_serves_the_iso_to_the_guests(routed, tmp_path):
    agent, router = routed
    # The CD's file system: ext4 here, as this machine's kernel may lack iso9660; cks_iso.sh
    # mounts either the same way (`mount -o ro DEVICE DIR`).
    iso, tree = tmp_path / "cks.img", tmp_path / "iso-tree"
    (tree / "binaries").mkdir(parents=True)
    kubeadm = b"\x7fELF kubeadm " * 1000
    (tree / "binaries/kubeadm").write_bytes(kubeadm)
    (tree / "version").write_text("1.28.4\n")
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(tree), str(iso), "4M"], check=True, capture_output=True)
    # A VR has one mount namespace; the lab's processes each have their own, so the shim
    # runs in the data server's (nsenter), where its mount is seen.
    server = int((agent.root / "run/vragent/metadata.pid").read_text().split()[0])
    shim = ["nsenter", "--target", str(server), "--mount", "--", "env", f"VRAGENT_ROOT={agent.root}",
            f"VRAGENT_CKS_ISO_DEVICE={iso}", f"PYTHONPATH={REPO}", "sh", str(REPO / "packaging/cks_iso.sh")]
    mounted = agent.lab.run("vr", [*shim, "true"], check=False)
    assert mounted.returncode == 0, mounted.stderr
    assert "Mounting CKS ISO into" in mounted.stdout
    try:
        listing = _get(agent, "/cks-iso/")
        assert 'href="binaries/"' in listing and 'href="version"' in listing, listing
        assert _get(agent, "/cks-iso/version") == "1.28.4\n"
        assert _get(agent, "/cks-iso/binaries/kubeadm") == hashlib.sha256(kubeadm).hexdigest()
        assert _get(agent, "/cks-iso/../../etc/passwd") == "404"
        # What a CKS node runs (k8s-node.yml: `wget -r -R "index.html*" $ROUTER_IP/cks-iso || echo ...`).
        # Debian 12's wget 1.21 saves the redirected /cks-iso as a file and then cannot make
        # the subdirectories under it (with Python's http.server too); the top level arrives.
        fetched = agent.lab.run("vm1", ["sh", "-c", f"cd {tmp_path} && wget -nv -r -R 'index.html*' "
                                                    f"{ROUTER_GUEST_IP}/cks-iso; "
                                                    f"cat {ROUTER_GUEST_IP}/cks-iso/version"], check=False)
        assert fetched.stdout == "1.28.4\n", fetched.stderr
    finally:
        unmounted = agent.lab.run("vr", [*shim, "false"], check=False)
    assert unmounted.returncode == 0, unmounted.stderr
    assert _get(agent, "/cks-iso/version") == "404"


def test_the_query_scripts_answer_as_the_management_server_parses(routed):
    agent, router = routed
    # GetDomRVersionCmd: "<release>&<signature>", split on '&' into two parts.
    version = router.script("get_template_version.sh")
    assert version.returncode == 0 and version.stdout.strip().split("&") == [RELEASE, SIGNATURE], version
    # GetRouterAlertsCommand with no alerts.
    alerts = router.script("getRouterAlerts.sh", "1970-01-01", "00:00:00")
    assert alerts.returncode == 0 and alerts.stdout.strip() == "No Alerts"
    # GetRouterMonitorResultsCommand(validateBasicTestsOnly): the file system check.
    writable = router.script("filesystem_writable_check.py")
    assert writable.returncode == 0 and writable.stdout.strip() == "file system is writable"
    # getRouterMonitorResults.sh false before any run: both sections, valid JSON, empty.
    empty = router.script("getRouterMonitorResults.sh", "false")
    assert empty.returncode == 0 and "FAILING CHECKS:" in empty.stdout
    assert json.loads(empty.stdout.split("MONITOR RESULTS:", 1)[1]) == {"basic": {}, "advanced": {}}
    # ManageServiceCommand (keepalived stop/start on a VPC): vragent's unit, never the masked one.
    manage = router.script("manage_service.sh", "is-active", "dnsmasq")
    assert manage.returncode == 0 and manage.stdout.strip() == "active", manage
    # BumpUpPriorityConfigItem: success, nothing to do.
    bump = router.script("bumpup_priority.sh")
    assert bump.returncode == 0 and "nothing to bump" in bump.stdout
    # DiagnosticsCommand: CloudStack's diagnostics.py, unchanged (stdout}, stderr}, exit code).
    ping = router.script("diagnostics.py", "ping", VM1_IP, "-c", "1")
    assert ping.returncode == 0 and "1 received" in ping.stdout, ping


def test_the_diagnostics_bundle_holds_vragents_log_and_state_and_cleanup_removes_it(routed):
    agent, router = routed
    defaults = ("iptables,ipaddr,iprule,iproute,/etc/cloudstack-release,/etc/dnsmasq.conf,/etc/dhcphosts.txt,"
                "/etc/dhcpopts.txt,/etc/dnsmasq.d/cloud.conf,/etc/dnsmasq-resolv.conf,/var/lib/misc/dnsmasq.leases,"
                "/var/log/dnsmasq.log,/etc/hosts,/etc/resolv.conf,/etc/haproxy/haproxy.cfg,/var/log/haproxy.log,"
                "/etc/ipsec.d/l2tp.conf,/var/log/cloud.log,/var/log/routerServiceMonitor.log,/var/log/daemon.log")
    done = router.script("get_diagnostics_files.py", *defaults.split(","))
    assert done.returncode == 0, done.stderr
    bundle = done.stdout.strip()
    assert bundle.startswith("/root/diagnostics_files_") and bundle.endswith(".zip")
    with zipfile.ZipFile(agent.root / bundle.lstrip("/")) as archive:
        names = set(archive.namelist())
        assert {"iptables.log", "ipaddr.log", "dhcphosts.txt", "hosts", "dnsmasq.conf", "cloudstack-release",
                "vragent-cloud-scripts.log", "vragent-state.json", "vragent-status.json", "fileinfo.txt"} <= names
        assert f"{VM1_MAC},{VM1_IP},web-01,infinite" in archive.read("dhcphosts.txt").decode()
        assert "-A vr-INPUT" in archive.read("iptables.log").decode()
        state = json.loads(archive.read("vragent-state.json"))
        assert state["format"].startswith("vragent/") and "Xk3r9-pW" not in archive.read("vragent-state.json").decode()
        assert "applied" in archive.read("vragent-cloud-scripts.log").decode()
    # DeleteFileInVrCommand: cleanup.sh, CloudStack's, unchanged.
    cleaned = router.script("cleanup.sh", bundle)
    assert cleaned.returncode == 0 and "Deleting diagnostics zip file" in cleaned.stdout
    assert not (agent.root / bundle.lstrip("/")).exists()


def test_the_smoke_tests_router_side_commands_give_their_expected_answers(routed):
    """The commands test/integration/smoke runs on a VR over SSH, and what each test asserts."""
    agent, router = routed
    # A third VM's second NIC on this network (default_entry false: no router, DNS or domain).
    secondary = dict(sample.dhcp_entry("02:00:00:00:00:13", "192.0.2.13", "app-01", ROUTER_GUEST_IP, ROUTER_GUEST_IP),
                     default_entry=False)
    assert agent.apply(secondary).returncode == 0

    def on_router(command: str) -> str:
        done = router.run(["sh", "-c", command])
        assert done.returncode == 0, done.stderr
        return done.stdout

    # test_router_dhcphosts.py: the VM's IP once, in the second field.
    for ip in (VM1_IP, VM2_IP):
        answer = on_router(f"cat /etc/dhcphosts.txt | grep {ip} | sed 's/\\,/ /g' | awk '{{print $2}}'")
        assert answer.count(ip) == 1, answer
    # test_router_dhcphosts.py (TestRouterDHCPOpts): the second NIC's tag in /etc/dhcpopts.txt.
    assert on_router("cat /etc/dhcpopts.txt | grep 192_0_2_13").count("192_0_2_13") == 3
    # test_password_server.py: the VM's IP in the password file of its gateway.
    answer = on_router(f"cat /var/cache/cloud/passwords-{ROUTER_GUEST_IP} | grep {VM1_IP} | sed 's/=/ /g' "
                       "| awk '{print $1}'")
    assert VM1_IP in answer
    # dns_check.py's and operators' /etc/hosts: ip<TAB>name per VM.
    hosts = on_router("cat /etc/hosts")
    assert f"{VM1_IP}\tweb-01\n" in hosts and f"{VM2_IP}\tdb-01\n" in hosts
    # test_routers_iptables_default_policy.py: INPUT and FORWARD list DROP once, their policy.
    for chain in ("INPUT", "FORWARD"):
        listing = on_router(f"iptables -L {chain}")
        assert listing.count("DROP") == 1 and f"Chain {chain} (policy DROP)" in listing, listing
    # The VM fetched its password (saved_password): the password file forgets it, as the incumbent's.
    from vragent.lab.guestdata import password

    fetched, acknowledged = password(agent.lab, "vm1", ROUTER_GUEST_IP, "send_my_password", "saved_password")
    assert fetched.body == b"Xk3r9-pW" and acknowledged.status == 200
    assert VM1_IP not in (agent.root / f"var/cache/cloud/passwords-{ROUTER_GUEST_IP}").read_text()
