"""Site-to-site VPN on a VPC router, proven with two real strongSwan daemons.

The router's charon (the one the remote-access VPN uses, vragent's own strongswan.conf
and swanctl.conf) and a peer charon on the public side (the `up` namespace, playing the
customer gateway with 203.0.113.0/25 behind it) negotiate IKE with the pushed PSK and
proposals; a wrong key is refused; a second peer is loaded over vici without restarting
charon or dropping the first's IKE SA; `create: false` removes a connection and its
rules; VPC <-> peer traffic is exempt from source NAT and never crosses in the clear.

What this kernel cannot do is said: it has no ESP (CONFIG_INET_ESP), so the CHILD_SA is
negotiated (proposal agreed) but cannot be installed; the test asserts exactly that, and
the NAT bypass is shown by its rules (no packet may leave for the peer without an SA).
"""

from __future__ import annotations

import json

import pytest

from vragent.lab import sample_vpc as vpc
from vragent.lab.agent import RouterAgent
from vragent.lab.topology import SOURCE_NAT_IP, UPSTREAM_SOURCES, VPC_CIDR
from vragent.lab.traffic import TcpServer, udp_probe
from vragent.lab.vpnclient import SiteToSitePeer, kernel_has_esp, s2s_established, server_ike_sas
from vragent.paths import Paths
from vragent.subsystems.vpn.render import VpnPaths
from tests.lab.checks import apply_ok

TIER1 = vpc.tier(1)


@pytest.fixture
def s2s(make_lab, tmp_path):
    lab = make_lab(router_type="vpcrouter", tiers=2)
    router = RouterAgent(lab, tmp_path / "root")
    result = apply_ok(router, *vpc.vpc(), vpc.site2sitevpn())
    assert "strongswan: start (not running)" in {s["summary"] for s in result.steps}, result.steps
    return lab, router, VpnPaths(Paths.from_root(router.root))


def peer(lab, tmp_path, psk=vpc.S2S_PSK) -> SiteToSitePeer:
    return SiteToSitePeer(lab, "up", tmp_path / f"peer-{len(list(tmp_path.glob('peer-*')))}", vpc.S2S_PEER,
                          SOURCE_NAT_IP, vpc.S2S_PEER_CIDR, VPC_CIDR, psk)


def dashed(ip: str) -> str:
    return ip.replace(".", "-")


def router_sas(lab, files) -> str:
    return server_ike_sas(lab, "vr", files.strongswan_conf, files.vici)


def charon_pid(files) -> int:
    return int(files.charon_pid.read_text().split()[0])


def test_the_peer_completes_ike_and_the_child_sa_stops_only_at_the_kernel(s2s, tmp_path):
    lab, router, files = s2s
    conf = files.swanctl_conf.read_text()
    assert f"vpn-{dashed(vpc.S2S_PEER)} {{" in conf and "proposals = aes128-sha1-modp1536" in conf
    assert f"remote_ts = {vpc.S2S_PEER_CIDR}" in conf and "start_action = trap" in conf
    with peer(lab, tmp_path) as far:
        result = far.initiate()
        output = result.stdout + result.stderr
        assert s2s_established(output), output[-3000:]
        sas = router_sas(lab, files)
        assert f"vpn-{dashed(vpc.S2S_PEER)}:" in sas and "ESTABLISHED" in sas and "IKEv2" in sas, sas
        assert "AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1536" in sas, sas
        log = files.charon_log.read_text()
        # The router, as IKEv2 responder, agreed on the CHILD_SA (the pushed ESP proposal
        # for the VPC <-> peer selectors) and installs it first.
        assert "selected proposal: ESP:AES_CBC_128/HMAC_SHA1_96/NO_EXT_SEQ" in log, log[-3000:]
        if not kernel_has_esp():
            # ... which is exactly where this kernel stops it: the SAD entry is refused,
            # the IKE_SA is kept and the peer is told NO_PROPOSAL_CHOSEN for the child.
            assert "unable to install inbound and outbound IPsec SA (SAD) in kernel" in log, log[-3000:]
            assert "failed to establish CHILD_SA, keeping IKE_SA" in log
            assert "received NO_PROPOSAL_CHOSEN notify, no CHILD_SA built" in output, output[-3000:]
        else:
            assert "CHILD_SA s2s{1} established" in output, output[-3000:]
    with peer(lab, tmp_path, psk="not-the-key") as wrong:
        attempt = wrong.initiate(timeout=5)
        assert not s2s_established(attempt.stdout + attempt.stderr), (attempt.stdout + attempt.stderr)[-3000:]
    log = files.charon_log.read_text()
    assert "tried 1 shared key" in log or "MAC mismatched" in log or "AUTHENTICATION_FAILED" in log, log[-3000:]


def test_a_second_peer_is_added_and_removed_without_disturbing_the_first(s2s, tmp_path):
    lab, router, files = s2s
    charon = charon_pid(files)
    with peer(lab, tmp_path) as far:
        assert s2s_established((r := far.initiate()).stdout + r.stderr)
        first_sa = [line for line in router_sas(lab, files).splitlines() if "ESTABLISHED" in line]
        assert first_sa
        second = vpc.site2sitevpn(peer=vpc.S2S_SECOND_PEER, cidrs=vpc.S2S_SECOND_CIDR, psk="an0ther-Key",
                                  ike_policy="aes256-sha256;modp2048", esp_policy="aes256-sha256", dpd=True)
        result = apply_ok(router, second)
        assert [s["summary"] for s in result.steps if s["summary"].startswith("strongswan")] == [
            "strongswan: reload (swanctl.conf changed)"], result.steps
        assert charon_pid(files) == charon
        listed = lab.run("vr", ["env", f"STRONGSWAN_CONF={files.strongswan_conf}", "swanctl", "--list-conns",
                                "--uri", f"unix://{files.vici}"]).stdout
        assert f"vpn-{dashed(vpc.S2S_PEER)}:" in listed and f"vpn-{dashed(vpc.S2S_SECOND_PEER)}:" in listed, listed
        # The first peer's IKE SA is the same one (same SPIs), still established.
        assert [line for line in router_sas(lab, files).splitlines() if "ESTABLISHED" in line] == first_sa
        # checkbatchs2svpn.sh's answer, as the management server parses it: the first peer
        # connected (rc 0), the second (absent) not (rc 11), no newline.
        check = router.run("status", "--checks2svpn", vpc.S2S_PEER, vpc.S2S_SECOND_PEER)
        assert check.returncode == 0 and check.stdout == (
            f"{vpc.S2S_PEER}:0:IPsec SA found;Site-to-site VPN have connected&"
            f"{vpc.S2S_SECOND_PEER}:11:IPsec SA not found;Site-to-site VPN have not connected&"), check
        assert [part.split(":") for part in check.stdout.split("&") if part][0][1] == "0"
        saved = router.iptables_save()
        assert f"-A vr-s2s -s {vpc.S2S_SECOND_PEER}/32 -d {SOURCE_NAT_IP}/32 -i eth1 -p udp -m udp --dport 500 -j ACCEPT" in saved
        assert f"-A vr-s2s-nonat -s {VPC_CIDR} -d {vpc.S2S_SECOND_CIDR} -o eth1 -j ACCEPT" in saved

        removed = apply_ok(router, vpc.site2sitevpn(peer=vpc.S2S_SECOND_PEER, create=False))
        assert charon_pid(files) == charon, removed.steps
        listed = lab.run("vr", ["env", f"STRONGSWAN_CONF={files.strongswan_conf}", "swanctl", "--list-conns",
                                "--uri", f"unix://{files.vici}"]).stdout
        assert f"vpn-{dashed(vpc.S2S_SECOND_PEER)}" not in listed and f"vpn-{dashed(vpc.S2S_PEER)}:" in listed, listed
        assert vpc.S2S_SECOND_PEER not in router.iptables_save()
        assert [line for line in router_sas(lab, files).splitlines() if "ESTABLISHED" in line] == first_sa
    # The last peer gone: charon stops, its files and every s2s rule go.
    apply_ok(router, vpc.site2sitevpn(create=False))
    saved = router.iptables_save()
    assert "vr-s2s" not in saved and not files.swanctl_conf.exists()


def counter(lab, chain: str, pattern: str) -> int:
    out = lab.run("vr", ["iptables", "-L", chain, "-v", "-x", "-n"]).stdout
    for line in out.splitlines()[2:]:
        if pattern in " ".join(line.split()):
            return int(line.split()[0])
    raise AssertionError(f"no rule with {pattern!r} in {chain}:\n{out}")


def test_vpc_and_peer_traffic_is_never_nated_and_never_in_the_clear(s2s):
    lab, router, files = s2s
    saved = router.iptables_save()
    for port in ("500", "4500"):
        assert (f"-A vr-s2s -s {vpc.S2S_PEER}/32 -d {SOURCE_NAT_IP}/32 -i eth1 -p udp -m udp --dport {port} "
                "-j ACCEPT") in saved
    assert f"-A vr-s2s -s {vpc.S2S_PEER}/32 -d {SOURCE_NAT_IP}/32 -i eth1 -p esp -j ACCEPT" in saved
    nat = saved.split("*nat", 1)[1].split("COMMIT", 1)[0]
    jumps = [line for line in nat.splitlines() if line.startswith("-A POSTROUTING")]
    assert jumps.index("-A POSTROUTING -j vr-s2s-nonat") < jumps.index("-A POSTROUTING -j vr-snat"), jumps
    assert f"-A vr-s2s-nonat -s {VPC_CIDR} -d {vpc.S2S_PEER_CIDR} -o eth1 -j ACCEPT" in nat
    forward = [line for line in saved.splitlines() if line.startswith("-A FORWARD")]
    assert forward.index("-A FORWARD -j vr-s2s-fwd") < forward.index("-A FORWARD -j vr-FORWARD"), forward

    # A passive connection installs no trap policy, so without an SA nothing but the
    # firewall stands between the VPC's traffic and the wire: a VM's packet to the peer's
    # network is dropped (never sent in the clear, never NAT'ed), while any other
    # destination is still reached with the source-NAT IP.
    apply_ok(router, vpc.site2sitevpn(passive=True), vpc.network_acl(1, ingress=[vpc.acl_rule("udp", 9000)]))
    assert "start_action = none" in files.swanctl_conf.read_text()
    outside = "203.0.113.200"  # outside the peer's 203.0.113.0/25
    lab.run("up", ["ip", "addr", "add", f"{outside}/32", "dev", "lo"])
    lab.run("up", ["ip", "route", "add", VPC_CIDR, "via", SOURCE_NAT_IP])
    out_rule = f"{VPC_CIDR} {vpc.S2S_PEER_CIDR} policy match dir out pol none"
    in_rule = f"{vpc.S2S_PEER_CIDR} {VPC_CIDR} policy match dir in pol none"
    dropped_out, dropped_in = counter(lab, "vr-s2s-fwd", out_rule), counter(lab, "vr-s2s-fwd", in_rule)
    with TcpServer(lab, "up", 9000, udp=True) as server:
        assert not udp_probe(lab, "vm1", UPSTREAM_SOURCES[0], server.port, timeout=1.0).ok
        udp_probe(lab, "vm1", outside, server.port, timeout=1.0)
        assert set(server.peers("udp")) == {SOURCE_NAT_IP}, server.peers("udp")
    assert counter(lab, "vr-s2s-fwd", out_rule) > dropped_out
    # Inbound, the tier's ACL lets udp 9000 in from anywhere, but a plain packet claiming
    # a peer-network source is a spoof; the same packet from elsewhere is let in.
    with TcpServer(lab, "vm1", 9000, udp=True) as server:
        udp_probe(lab, "up", TIER1.vm_ip, server.port, timeout=1.0, source=UPSTREAM_SOURCES[0])
        assert server.peers("udp") == []
        udp_probe(lab, "up", TIER1.vm_ip, server.port, timeout=1.0, source=outside)
        assert set(server.peers("udp")) == {outside}, server.peers("udp")
    assert counter(lab, "vr-s2s-fwd", in_rule) > dropped_in


@pytest.mark.parametrize("overrides, path, message", [
    ({"ike_policy": "3des-md5;modp1024"}, "ike_policy", "cipher '3des' is not supported"),
    ({"esp_policy": "aes128-sha1;ecp256"}, "esp_policy", "DH group 'ecp256' is not supported"),
    ({"local_public_ip": "198.51.100.99"}, "local_public_ip", "is not a public IP of this router"),
    ({"peer_guest_cidr_list": "10.70.5.0/24"}, "peer_guest_cidr_list", "overlaps the VPC"),
    ({"ike_lifetime": 10}, "ike_lifetime", "outside 60"),
    ({"ipsec_psk": 'has"quote'}, "ipsec_psk", "printable ASCII"),
])
def test_bad_site_to_site_input_is_refused_with_its_path_and_changes_nothing(s2s, overrides, path, message):
    lab, router, files = s2s
    before, conf = router.iptables_save(), files.swanctl_conf.read_text()
    result = router.apply(vpc.site2sitevpn(peer="198.51.100.77", **overrides))
    assert result.returncode == 2
    assert any(e.split(": ", 1)[0].endswith(f".{path}") and message in e for e in result.errors), result.errors
    assert router.iptables_save() == before and files.swanctl_conf.read_text() == conf


def test_the_key_stays_out_of_the_dry_run_json_and_log(s2s):
    lab, router, files = s2s
    rekeyed = vpc.site2sitevpn(psk="fresh-S2s-Key")
    dry = router.apply(rekeyed, dry_run=True)
    assert dry.returncode == 0
    assert "fresh-S2s-Key" not in dry.stdout + dry.stderr and vpc.S2S_PSK not in dry.stdout + dry.stderr
    assert "fresh-S2s-Key" not in json.dumps(dry.result)
    result = apply_ok(router, rekeyed)
    assert "fresh-S2s-Key" not in result.stdout + json.dumps(result.result)
    log = (router.root / "var/log/cloud-scripts.log").read_text()
    assert "fresh-S2s-Key" not in log and vpc.S2S_PSK not in log
    assert 'secret = "fresh-S2s-Key"' in files.swanctl_conf.read_text()
    assert oct(files.swanctl_conf.stat().st_mode & 0o777) == "0o600"
