"""Remote-access VPN (L2TP/IPsec) on an isolated router, proven with real daemons and packets.

A real strongSwan client on the public side (the `up` namespace, its own files and
PIDs) negotiates IKE with the router's charon using the pre-shared key; a wrong key is
refused; the router's xl2tpd answers L2TP only from inside (plain L2TP from the outside
is dropped: udp 1701 must come out of IPsec); ESP is accepted on the VPN's public IP and
nowhere else; users come and go without restarting anything; `create: false` stops it all.

What this machine's kernel cannot do is said, not hidden: it has no ESP (CONFIG_INET_ESP)
and no PPP (CONFIG_PPP), so the client's IPsec SA cannot be installed and no PPP session
(CHAP, an address from the range, a ping to a VM) can exist here; the tests assert exactly
where the path ends and go further when the kernel has both.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.topology import EXTRA_PUBLIC_IPS, SOURCE_NAT_IP
from vragent.lab.vpnclient import (SCCRP, IpsecClient, ike_established, kernel_has_esp, l2tp_message_type,
                                   l2tp_probe, send_esp, server_ike_sas)
from vragent.subsystems.vpn.render import VpnPaths

USERS = (("alice", "al1ce-Pw9", True), ("bob", "b0b-Pw7", True))


def pushes(*extra) -> list[dict]:
    return [sample.cmdline(), sample.ips(), sample.guestnetwork(), sample.remote_access_vpn(),
            sample.vpn_users(*USERS), *extra]


def pid_of(path) -> int:
    return int(path.read_text().split()[0])


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for init to reap it (charon's parent has exited)."""
    from vragent.lab.topology import _is_alive

    return _is_alive(pid)


def assert_converged(router: RouterAgent, *payloads) -> None:
    for again in router.reapply(*payloads):
        assert again.returncode == 0 and again.result["status"] == "unchanged" and again.steps == [], again.steps


def listening(lab) -> set[tuple[str, str]]:
    """(process, local address:port) of every UDP socket in the router."""
    found = set()
    for line in lab.run("vr", ["ss", "-uanpH"]).stdout.splitlines():
        fields = line.split()
        process = re.search(r'\(\("([^"]+)"', line)
        found.add((process.group(1) if process else "", fields[3]))
    return found


def counter(lab, table: str, chain: str, pattern: str) -> int:
    """Packets a rule of a chain has matched (iptables -v)."""
    out = lab.run("vr", ["iptables", "-t", table, "-L", chain, "-v", "-x", "-n"]).stdout
    for line in out.splitlines()[2:]:
        if re.search(pattern, line):
            return int(line.split()[0])
    raise AssertionError(f"no rule matching {pattern!r} in {table} {chain}:\n{out}")


@pytest.fixture
def vpn(lab, tmp_path):
    router = RouterAgent(lab, tmp_path / "root")
    result = router.apply(*pushes())
    assert result.returncode == 0, (result.errors, result.stderr)
    assert {"strongswan: start (not running)", "xl2tpd: start (not running)"} <= {s["summary"] for s in result.steps}
    assert_converged(router, *pushes())
    return lab, router


def client(lab, tmp_path, psk: str = sample.VPN_PSK, server: str = SOURCE_NAT_IP) -> IpsecClient:
    return IpsecClient(lab, "up", tmp_path / f"client-{len(list(tmp_path.glob('client-*')))}", server, psk)


def test_the_router_serves_ike_and_l2tp_on_the_vpn_public_ip_only(vpn):
    lab, router = vpn
    sockets = listening(lab)
    assert ("charon-systemd", "0.0.0.0:500") in sockets and ("charon-systemd", "0.0.0.0:4500") in sockets
    assert ("xl2tpd", f"{SOURCE_NAT_IP}:1701") in sockets
    files = VpnPaths(_paths(router))
    assert oct(files.swanctl_conf.stat().st_mode & 0o777) == "0o600"
    assert oct(files.chap_secrets.stat().st_mode & 0o777) == "0o600"
    assert files.chap_secrets.read_text().splitlines()[2:] == ['"alice" * "al1ce-Pw9" *', '"bob" * "b0b-Pw7" *']
    # From the internet, plain L2TP (not out of an IPsec SA) is dropped before xl2tpd sees it.
    dropped_before = counter(lab, "mangle", f"vr-fw-{SOURCE_NAT_IP}", r"DROP\s")
    assert l2tp_probe(lab, "up", SOURCE_NAT_IP, "198.51.100.1", timeout=1.0) == b""
    assert counter(lab, "mangle", f"vr-fw-{SOURCE_NAT_IP}", r"DROP\s") == dropped_before + 1


def test_plain_l2tp_stays_out_even_where_the_ingress_firewall_opens_udp_1701(vpn):
    """The management server opens udp 500, 1701 and 4500 with firewall rules when it
    enables a VPN; L2TP must still come out of IPsec (vr-vpn's policy match)."""
    lab, router = vpn
    opened = sample.firewall_rules(*(sample.firewall_rule(900 + port, "udp", port) for port in (500, 1701, 4500)))
    result = router.apply(opened)
    assert result.returncode == 0, result.errors
    assert_converged(router, opened)
    # xl2tpd answers an L2TP client: from the router itself (lo), which vr-INPUT trusts.
    answer = l2tp_probe(lab, "vr", SOURCE_NAT_IP, SOURCE_NAT_IP)
    assert l2tp_message_type(answer) == SCCRP, answer.hex()
    # The same packet from the internet passes the ingress firewall and stops at vr-INPUT.
    policy_drops = int(lab.run("vr", ["iptables", "-L", "INPUT", "-v", "-x", "-n"]).stdout.split()[4])
    assert l2tp_probe(lab, "up", SOURCE_NAT_IP, "198.51.100.1", timeout=1.0) == b""
    assert int(lab.run("vr", ["iptables", "-L", "INPUT", "-v", "-x", "-n"]).stdout.split()[4]) == policy_drops + 1


def _paths(router: RouterAgent):
    from vragent.paths import Paths

    return Paths.from_root(router.root)


def test_a_client_with_the_preshared_key_completes_ike_and_a_wrong_key_is_refused(vpn, tmp_path):
    lab, router = vpn
    files = VpnPaths(_paths(router))
    with client(lab, tmp_path) as good:
        result = good.initiate()
        output = result.stdout + result.stderr
        assert ike_established(output), output[-3000:]
        # The router agrees: an ESTABLISHED IKE SA with the client (main mode, PSK).
        sas = server_ike_sas(lab, "vr", files.strongswan_conf, files.vici)
        assert "l2tp-psk" in sas and "ESTABLISHED" in sas and "198.51.100.1" in sas, sas
        # Quick mode agreed on ESP in transport mode for L2TP; whether the kernel can hold
        # the SA decides the rest.
        assert "selected proposal: ESP" in output, output[-3000:]
        if not kernel_has_esp():
            assert "unable to install inbound and outbound IPsec SA (SAD) in kernel" in output
    with client(lab, tmp_path, psk="not-the-key") as wrong:
        output = wrong.initiate(timeout=5)
        text = output.stdout + output.stderr
        assert not ike_established(text), text[-3000:]
    sas = server_ike_sas(lab, "vr", files.strongswan_conf, files.vici)
    assert sas.count("ESTABLISHED") <= 1, sas  # only the first client's, never the wrong key's


def test_esp_and_ike_are_accepted_on_the_vpn_ip_and_dropped_on_other_public_ips(vpn):
    lab, _ = vpn
    other = EXTRA_PUBLIC_IPS[0]
    esp_before = counter(lab, "filter", "vr-vpn", r"ACCEPT\s+(esp|50)\s")
    send_esp(lab, "up", SOURCE_NAT_IP, count=3)
    assert counter(lab, "filter", "vr-vpn", r"ACCEPT\s+(esp|50)\s") == esp_before + 3
    dropped_before = counter(lab, "mangle", f"vr-fw-{other}", r"DROP\s")
    send_esp(lab, "up", other, count=2)
    assert counter(lab, "mangle", f"vr-fw-{other}", r"DROP\s") == dropped_before + 2
    assert counter(lab, "filter", "vr-vpn", r"ACCEPT\s+(esp|50)\s") == esp_before + 3


def test_users_come_and_go_without_restarting_the_vpn(vpn, tmp_path):
    lab, router = vpn
    files = VpnPaths(_paths(router))
    charon, xl2tpd = pid_of(files.charon_pid), pid_of(files.xl2tpd_pid)
    carol = sample.vpn_users(("carol", "c4rol-Pw", True), ("bob", "", False))
    result = router.apply(carol)
    assert result.returncode == 0, result.errors
    # chap-secrets is all that changed: pppd reads it for each new connection.
    assert [s["summary"] for s in result.steps] == ["xl2tpd: none (chap-secrets changed)",
                                                  "vpn: end the sessions of bob"], result.steps
    assert files.chap_secrets.read_text().splitlines()[2:] == ['"alice" * "al1ce-Pw9" *', '"carol" * "c4rol-Pw" *']
    assert (pid_of(files.charon_pid), pid_of(files.xl2tpd_pid)) == (charon, xl2tpd)
    assert [u["user"] for u in router.show()["vpn_users"]] == ["alice", "carol"]
    assert_converged(router, carol)


def test_a_removed_user_s_session_is_ended_and_the_others_are_kept(vpn, tmp_path):
    """No PPP session can exist on this kernel, so each session is stood for by what the
    step reads: a record in a real pppd2.tdb (written with tdbtool) naming a live process
    called pppd, as pppd writes them (PEERNAME, PPPD_PID)."""
    lab, router = vpn
    files = VpnPaths(_paths(router))
    fake_pppd = tmp_path / "pppd"
    shutil.copy("/bin/sleep", fake_pppd)
    sessions = {name: lab.popen("vr", [str(fake_pppd), "300"]) for name in ("alice", "bob")}
    script = f"create {files.pppd_db}\n" + "".join(
        f"store pppd{p.pid} PPPD_PID={p.pid};PEERNAME={name};IFNAME=ppp{i};\n"
        for i, (name, p) in enumerate(sessions.items())) + "quit\n"
    subprocess.run(["tdbtool"], input=script, text=True, capture_output=True, check=True, timeout=10)
    result = router.apply(sample.vpn_users(("bob", "", False)))
    assert result.returncode == 0, result.errors
    deadline = time.monotonic() + 3
    while sessions["bob"].poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sessions["bob"].returncode == -signal.SIGTERM
    assert sessions["alice"].poll() is None
    for process in sessions.values():
        lab.terminate(process)


def test_create_false_stops_the_vpn_and_closes_its_openings(vpn, tmp_path):
    lab, router = vpn
    files = VpnPaths(_paths(router))
    charon, xl2tpd = pid_of(files.charon_pid), pid_of(files.xl2tpd_pid)
    off = sample.remote_access_vpn(create=False)
    result = router.apply(off)
    assert result.returncode == 0, result.errors
    assert {"strongswan: stop (no longer needed)", "xl2tpd: stop (no longer needed)"} <= {
        s["summary"] for s in result.steps}
    assert not alive(charon) and not alive(xl2tpd)
    assert not {port for _, port in listening(lab)} & {"0.0.0.0:500", "0.0.0.0:4500", f"{SOURCE_NAT_IP}:1701"}
    rules = router.iptables_save()
    assert "vr-vpn" not in rules and "-p esp" not in rules and "1701" not in rules and "ppp+" not in rules
    assert not files.swanctl_conf.exists() and not files.chap_secrets.exists()
    assert "remote_access_vpn" not in router.show()
    with client(lab, tmp_path) as late:
        attempt = late.initiate(timeout=4)
        assert not ike_established(attempt.stdout + attempt.stderr)
    assert_converged(router, off)
    # And back on: the same push starts it again.
    again = router.apply(sample.remote_access_vpn())
    assert again.returncode == 0 and "strongswan: start (not running)" in {s["summary"] for s in again.steps}


@pytest.mark.parametrize("payload, path, message", [
    (sample.remote_access_vpn(public_ip="198.51.100.99"), "vpn_server_ip", "is not a public IP of this router"),
    (sample.remote_access_vpn(ip_range="192.0.2.100-192.0.2.120"), "ip_range", "overlaps the guest network"),
    (sample.remote_access_vpn(local_ip="10.1.2.5"), "local_ip", "inside ip_range"),
    (sample.remote_access_vpn(psk='has"quote'), "preshared_key", "without quotes"),
    (sample.vpn_users(("eve\nmallory", "pw-pw-pw", True)), "vpn_users[0].user", "holds a line break"),
    (sample.vpn_users(("eve mallory", "pw-pw-pw", True)), "vpn_users[0].user", "is not a VPN user name"),
    (sample.vpn_users(("eve", 'pw" * "x', True)), "vpn_users[0].password", "without spaces, quotes"),
])
def test_bad_vpn_input_is_refused_with_its_path_and_changes_nothing(vpn, payload, path, message):
    lab, router = vpn
    before = router.iptables_save(), (router.root / "var/lib/vragent/state.json").read_text()
    result = router.apply(payload)
    assert result.returncode == 2, result.errors
    assert any(f"$.{path}:" in e and message in e for e in result.errors), result.errors
    assert (router.iptables_save(), (router.root / "var/lib/vragent/state.json").read_text()) == before
    assert 'has"quote' not in result.stdout and "pw-pw-pw" not in result.stdout


def test_secrets_stay_out_of_the_dry_run_json_and_log(vpn):
    lab, router = vpn
    new_secrets = sample.remote_access_vpn(psk="fresh-Psk-0k"), sample.vpn_users(("dave", "d4ve-Secret", True))
    diff = router.dry_run_text(*new_secrets)
    assert "swanctl.conf" in diff and "chap-secrets" in diff and "not shown" in diff, diff
    applied = router.apply(*new_secrets)
    assert applied.returncode == 0, applied.errors
    log = (router.root / "var/log/cloud-scripts.log").read_text()
    for secret in ("fresh-Psk-0k", "d4ve-Secret", sample.VPN_PSK, "al1ce-Pw9"):
        assert secret not in diff and secret not in applied.stdout and secret not in log
    # The pushes the management server left are archived with the secrets masked (the shims).
    from vragent.redact import secrets_hidden

    assert "fresh-Psk-0k" not in secrets_hidden(sample.wire_json(new_secrets[0]))


def test_a_full_resync_batch_with_a_vpn_configures_the_whole_router(lab, tmp_path):
    """The management server's VR-<uuid>.cfg after a restart carries remote_access_vpn.json
    and vpn_user_list.json with everything else: the batch is applied as one transaction."""
    router = RouterAgent(lab, tmp_path / "root")
    opened = sample.firewall_rules(*(sample.firewall_rule(900 + port, "udp", port) for port in (500, 1701, 4500)))
    batch = sample.batch_cfg(sample.named(*pushes(opened)))
    result = router.apply(batch)
    assert result.returncode == 0, (result.errors, result.stderr)
    assert {"strongswan: start (not running)", "xl2tpd: start (not running)",
            "dnsmasq: start (not running)"} <= {s["summary"] for s in result.steps}
    assert ("xl2tpd", f"{SOURCE_NAT_IP}:1701") in listening(lab)
    assert "-A vr-INPUT -j vr-vpn" in router.iptables_save()
    assert_converged(router, batch)


def test_a_new_key_is_loaded_without_restarting_charon(vpn, tmp_path):
    lab, router = vpn
    files = VpnPaths(_paths(router))
    charon = pid_of(files.charon_pid)
    rekeyed = sample.remote_access_vpn(psk="n3w-Shared-Key")
    result = router.apply(rekeyed)
    assert result.returncode == 0, result.errors
    assert [s["summary"] for s in result.steps] == ["strongswan: reload (swanctl.conf changed)"], result.steps
    assert pid_of(files.charon_pid) == charon and alive(charon)
    with client(lab, tmp_path, psk=sample.VPN_PSK) as old:
        attempt = old.initiate(timeout=5)
        assert not ike_established(attempt.stdout + attempt.stderr)
    with client(lab, tmp_path, psk="n3w-Shared-Key") as new:
        attempt = new.initiate()
        assert ike_established(attempt.stdout + attempt.stderr), (attempt.stdout + attempt.stderr)[-3000:]
    assert_converged(router, rekeyed)


def test_a_killed_charon_comes_back_with_its_connection_loaded(vpn, tmp_path):
    lab, router = vpn
    files = VpnPaths(_paths(router))
    os.kill(pid_of(files.charon_pid), signal.SIGKILL)
    deadline = time.monotonic() + 3
    while alive(pid_of(files.charon_pid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    supervised = router.run("supervise", "--once")
    assert supervised.returncode == 0, supervised.stderr
    assert alive(pid_of(files.charon_pid))
    with client(lab, tmp_path) as again:
        attempt = again.initiate()
        assert ike_established(attempt.stdout + attempt.stderr), (attempt.stdout + attempt.stderr)[-3000:]
