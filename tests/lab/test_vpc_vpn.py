"""Remote-access VPN on a VPC router, as the management server sends it on every VPC router
start: `public_interface` eth1 and the VPC's CIDR as `local_cidr`
(CommandSetupHelper.createApplyVpnCommands, VpcVirtualNetworkApplianceManagerImpl
finalizeCommandsOnStart step 5), here inside one VR-*.cfg batch with the tiers, their ACLs
and the VPN users, handed over through the real `vr_cfg.sh -c`.

The batch is one transaction: with the VPN's public IP wrong, it exits 2 and the router
stays exactly as it was (no tier, no daemon, no rule); right, it exits 0, both tiers reach
upstream, and a real strongSwan client on the public side completes IKE with the key (the
kernel here has no ESP and no PPP: see tests/lab/test_vpn.py for where the path ends).
Replaying the same batch changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from vragent.lab import sample, sample_vpc as vpc
from vragent.lab.agent import RouterAgent
from vragent.lab.topology import PUBLIC_GATEWAY, SOURCE_NAT_IP, _is_alive as alive
from vragent.lab.traffic import TcpServer, tcp_connect
from vragent.lab.vpnclient import IpsecClient, ike_established, kernel_has_esp, server_ike_sas
from vragent.paths import Paths
from vragent.subsystems.vpn.render import VpnPaths

REPO = Path(__file__).resolve().parents[2]
ALLOW_ALL = [vpc.acl_rule("all")]


def restart_batch(vpn: dict) -> str:
    """What a VPC router start brings after the cmdline, in the management server's order:
    the source-NAT IP, the tiers, the VPN users and the VPN, then per tier its ACL."""
    return sample.batch_cfg(sample.named(
        vpc.ips(), vpc.guestnetwork(1), vpc.guestnetwork(2),
        sample.vpn_users(("alice", "al1ce-Pw9", True)), vpn,
        vpc.network_acl(1, ingress=ALLOW_ALL, egress=ALLOW_ALL),
        vpc.network_acl(2, ingress=ALLOW_ALL, egress=ALLOW_ALL)))


def vr_cfg(lab, router: RouterAgent, batch: str):
    """`vr_cfg.sh -c` on the batch in /var/cache/cloud, as the management server runs it."""
    cache = router.root / "var/cache/cloud"
    cache.mkdir(parents=True, exist_ok=True)
    name = sample.batch_file_name()
    (cache / name).write_text(batch)
    env = ["env", f"VRAGENT_ROOT={router.root}", f"PYTHONPATH={REPO}"]
    return lab.run("vr", [*env, "sh", str(REPO / "packaging/vr_cfg.sh"), "-c", str(cache / name)],
                   check=False, timeout=180)


def router_view(lab, router: RouterAgent) -> tuple:
    files = VpnPaths(Paths.from_root(router.root))
    return (router.iptables_save(), lab.run("vr", ["ip", "-4", "-br", "addr"]).stdout,
            files.charon_pid.exists(), files.xl2tpd_pid.exists())


@pytest.fixture
def booted(make_lab, tmp_path):
    lab = make_lab(router_type="vpcrouter", tiers=2)
    router = RouterAgent(lab, tmp_path / "root")
    first = router.apply(vpc.cmdline())  # cloud-postinit: update_config.py cmd_line.json
    assert first.returncode == 0, first.errors
    return lab, router


def test_a_vpc_restart_batch_with_a_remote_access_vpn_applies_as_one_transaction(booted, tmp_path):
    lab, router = booted
    before = router_view(lab, router)
    # One refused file refuses the whole batch, and nothing of the rest is applied.
    wrong = vr_cfg(lab, router, restart_batch(vpc.remote_access_vpn(public_ip="198.51.100.99")))
    assert wrong.returncode == 2, (wrong.stdout, wrong.stderr)
    assert "vpn_server_ip" in wrong.stdout + wrong.stderr
    assert router_view(lab, router) == before

    done = vr_cfg(lab, router, restart_batch(vpc.remote_access_vpn()))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    shown = router.show()
    assert shown["remote_access_vpn"]["public_interface"] == "eth1"
    assert shown["remote_access_vpn"]["local_cidr"] == vpc.VPC_CIDR
    # The tiers work: each reaches upstream with the source-NAT IP.
    with TcpServer(lab, "up", 8080):
        for role in ("vm1", "vm2"):
            result = tcp_connect(lab, role, PUBLIC_GATEWAY, 8080)
            assert result.ok and result.peer_seen == SOURCE_NAT_IP, role
    # The VPN works as far as this kernel lets it: IKE with the key, from the internet side.
    files = VpnPaths(Paths.from_root(router.root))
    with IpsecClient(lab, "up", tmp_path / "client", SOURCE_NAT_IP, sample.VPN_PSK) as client:
        output = client.initiate()
        text = output.stdout + output.stderr
        assert ike_established(text), text[-3000:]
        sas = server_ike_sas(lab, "vr", files.strongswan_conf, files.vici)
        assert "l2tp-psk" in sas and "ESTABLISHED" in sas, sas
        if not kernel_has_esp():
            assert "unable to install inbound and outbound IPsec SA (SAD) in kernel" in text
    # The same restart again (the next router start) changes nothing.
    pids = (files.charon_pid.read_text(), files.xl2tpd_pid.read_text())
    settled = router_view(lab, router)
    again = vr_cfg(lab, router, restart_batch(vpc.remote_access_vpn()))
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert router_view(lab, router) == settled
    assert (files.charon_pid.read_text(), files.xl2tpd_pid.read_text()) == pids
    batch = router.write_push(restart_batch(vpc.remote_access_vpn()))
    for result in router.reapply(batch):
        assert (result.returncode, result.result["status"], result.steps) == (0, "unchanged", []), result.steps


def test_the_vpn_goes_with_create_false_and_the_tiers_stay(booted):
    lab, router = booted
    done = vr_cfg(lab, router, restart_batch(vpc.remote_access_vpn()))
    assert done.returncode == 0, done.stderr
    files = VpnPaths(Paths.from_root(router.root))
    charon = int(files.charon_pid.read_text().split()[0])
    stop = router.apply(vpc.remote_access_vpn(create=False))
    assert stop.returncode == 0, stop.errors
    assert {"strongswan: stop (no longer needed)", "xl2tpd: stop (no longer needed)"} <= \
        {s["summary"] for s in stop.steps}, stop.steps
    assert not alive(charon)
    assert "ppp+" not in router.iptables_save() and "vr-vpn" not in router.iptables_save()
    with TcpServer(lab, "up", 8080):
        assert tcp_connect(lab, "vm1", PUBLIC_GATEWAY, 8080).peer_seen == SOURCE_NAT_IP
    for result in router.reapply(vpc.remote_access_vpn(create=False)):
        assert (result.returncode, result.result["status"], result.steps) == (0, "unchanged", []), result.steps
