"""`vragent lab up --bare` and `vragent lab push`: replaying the management server's files on
the lab router through the shims a VR runs (update_config.py NAME, vr_cfg.sh -c), proven
with traffic. This is how an operator rehearses a real push before it reaches a router."""

from __future__ import annotations

import subprocess
import sys

from tests.lab.conftest import unique_prefix
from vragent.lab import sample
from vragent.lab.topology import EXTRA_PUBLIC_IPS, UPSTREAM_SOURCES, VM1_IP, Lab
from vragent.lab.traffic import TcpServer, tcp_connect

PF_IP = EXTRA_PUBLIC_IPS[0]


def vragent_lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vragent", "lab", *args], capture_output=True, text=True,
                          timeout=300, check=False)


def write(directory, payload) -> str:
    path = directory / sample.push_file_name(payload)
    path.write_text(sample.wire_json(payload))
    return str(path)


def test_a_bare_lab_router_is_configured_by_pushed_files_through_the_shims(tmp_path):
    prefix = unique_prefix()
    try:
        up = vragent_lab("up", "--bare", "--prefix", prefix)
        assert up.returncode == 0, up.stderr
        lab = Lab(prefix)
        rules = sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22))
        firewall = sample.firewall_rules(sample.firewall_rule(1001, ports=2222, public_ip=PF_IP))
        # Before any push the router holds no address: nothing reaches the VM.
        with TcpServer(lab, "vm1", 22):
            assert not tcp_connect(lab, "up", PF_IP, 2222, timeout=1.0).ok
        files = [write(tmp_path, p) for p in (sample.cmdline(), sample.ips())]
        batch = tmp_path / sample.batch_file_name()
        batch.write_text(sample.batch_cfg(sample.named(rules, firewall)))
        pushed = vragent_lab("push", "--prefix", prefix, *files, str(batch))
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert pushed.stdout.count("update_config.py exited 0") == 2
        assert "vr_cfg.sh -c exited 0" in pushed.stdout
        with TcpServer(lab, "vm1", 22) as server:
            assert tcp_connect(lab, "up", PF_IP, 2222, timeout=2.0, source=UPSTREAM_SOURCES[0]).ok
            assert server.peers() == [UPSTREAM_SOURCES[0]]
        # The same file again: applied by the shim and changes nothing.
        before = lab.run("vr", ["iptables-save"]).stdout.splitlines()
        again = vragent_lab("push", "--prefix", prefix, files[1])
        assert again.returncode == 0, again.stderr
        after = lab.run("vr", ["iptables-save"]).stdout.splitlines()
        assert [line for line in after if not line.startswith("#")] == \
               [line for line in before if not line.startswith("#")]
        # An invalid file stops the replay with the agent's exit code and its reason.
        bad = tmp_path / "forwarding_rules.json.bad"
        bad.write_text('{"type": "forwardrules", "rules": [{"source_ip_address": "198.51.100.300"}]}')
        refused = vragent_lab("push", "--prefix", prefix, str(bad), files[0])
        assert refused.returncode == 2
        assert "source_ip_address" in refused.stderr and refused.stdout.count("exited") == 1
        # A command on a lab machine, as an operator would check from there.
        ran = vragent_lab("exec", "--prefix", prefix, "vr", "--", "ip", "-br", "addr", "show", "eth2")
        assert ran.returncode == 0
    finally:
        down = vragent_lab("down", "--prefix", prefix)
        assert down.returncode == 0, down.stderr
    assert not Lab(prefix).exists()


def test_a_bare_vpc_lab_takes_a_vpc_routers_pushes(tmp_path):
    from vragent.lab import sample_vpc
    from vragent.lab.topology import PUBLIC_GATEWAY, SOURCE_NAT_IP

    prefix = unique_prefix()
    try:
        assert vragent_lab("up", "--type", "vpcrouter", "--prefix", prefix).returncode == 2  # needs --bare
        up = vragent_lab("up", "--bare", "--type", "vpcrouter", "--prefix", prefix)
        assert up.returncode == 0, up.stderr
        lab = Lab(prefix, router_type="vpcrouter", tiers=2)
        files = []
        for index, payload in enumerate(sample_vpc.vpc()):
            path = tmp_path / f"{index}-{sample.push_file_name(payload)}"
            path.write_text(sample.wire_json(payload))
            files.append(str(path))
        pushed = vragent_lab("push", "--prefix", prefix, *files)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        # Both tiers leave through eth1 with the source-NAT IP.
        with TcpServer(lab, "up", 8080):
            for role in ("vm1", "vm2"):
                result = tcp_connect(lab, role, PUBLIC_GATEWAY, 8080, timeout=2.0)
                assert result.ok and result.peer_seen == SOURCE_NAT_IP, role
    finally:
        assert vragent_lab("down", "--prefix", prefix).returncode == 0
    assert not Lab(prefix, router_type="vpcrouter", tiers=2).exists()


def test_a_lab_that_does_not_come_up_leaves_nothing_behind(tmp_path):
    from vragent.lab.cli import LAB_STATE

    broken = tmp_path / "bin"
    broken.mkdir()
    for tool in ("iptables-restore", "iptables-legacy-restore", "iptables-nft-restore"):
        (broken / tool).write_text("#!/bin/sh\necho 'iptables-restore: broken for this test' >&2\nexit 1\n")
        (broken / tool).chmod(0o755)
    prefix = unique_prefix()
    import os

    env = {**os.environ, "PATH": f"{broken}:{os.environ['PATH']}"}
    try:
        up = subprocess.run([sys.executable, "-m", "vragent", "lab", "up", "--prefix", prefix], capture_output=True,
                            text=True, timeout=300, env=env)
        assert up.returncode == 1, up.stdout + up.stderr
        assert "removing the lab again" in up.stderr and "Traceback" not in up.stderr
        assert not any(Lab(prefix).ns(role) in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                              text=True).stdout for role in ("vr", "vm1", "up"))
        assert not (LAB_STATE / prefix).exists()
    finally:
        vragent_lab("down", "--prefix", prefix)


def test_lab_up_into_a_closed_pipe_is_no_traceback(tmp_path):
    prefix = unique_prefix()
    try:
        up = subprocess.run(f"{sys.executable} -m vragent lab up --bare --prefix {prefix} | head -c 1 >/dev/null; "
                            "echo ${PIPESTATUS[0]} >&2", shell=True, executable="/bin/bash", capture_output=True,
                            text=True, timeout=300)
        assert "Traceback" not in up.stderr and up.stderr.strip().splitlines()[-1] in ("0", "141"), up.stderr
    finally:
        assert vragent_lab("down", "--prefix", prefix).returncode == 0
    assert not Lab(prefix).exists()
