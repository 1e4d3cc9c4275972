"""The operator at the keyboard: `--root` never configures a namespace that is not a router's,
mistakes end in one line and a documented exit code, drift is named rule by rule, and a
dry-run on a big router shows the change and little else."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.cli import _SHIM
from vragent.lab.topology import EXTRA_PUBLIC_IPS, VM1_IP
from tests.lab.checks import apply_ok

REPO = Path(__file__).resolve().parents[2]
CMDLINE = REPO / "tests/unit/wire_real/cmd_line.json"  # a real VR's boot arguments
REFUSED = "refusing to change this machine's network"
PF_IP = EXTRA_PUBLIC_IPS[0]


def network_of(lab, role: str) -> tuple:
    """All `--root` does not relocate: links, addresses, routes, rules, tables, sysctls."""
    def run(*argv: str) -> str:
        return lab.run(role, list(argv)).stdout

    tables = "\n".join(line for line in run("iptables-save").splitlines() if not line.startswith("#"))
    return (run("ip", "-o", "link"), run("ip", "-o", "addr"), run("ip", "route", "show", "table", "all"),
            run("ip", "rule"), tables, run("sysctl", "net.ipv4.ip_forward", "net.ipv4.conf.all.arp_announce"))


def agent(lab, role: str, root: Path, *args: str):
    return lab.run(role, [sys.executable, "-m", "vragent", "--root", str(root), *args], check=False)


def test_an_unmarked_namespace_is_never_configured_and_the_refusal_says_why(lab, tmp_path):
    root = tmp_path / "plain"  # an ordinary machine: nothing says it is a router
    before = network_of(lab, "vr")

    refused = agent(lab, "vr", root, "apply", str(CMDLINE))
    assert refused.returncode == 2, refused.stderr
    assert REFUSED in refused.stderr and "--this-is-the-router" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    for args in (["restore"], ["transition", "primary"], ["supervise", "--once"]):
        done = agent(lab, "vr", root, *args)
        assert done.returncode == 2 and REFUSED in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    # The shims refuse too, and leave the management server's file where it was.
    cache = root / "var/cache/cloud"
    cache.mkdir(parents=True)
    shutil.copyfile(CMDLINE, cache / "cmd_line.json")
    shim = lab.run("vr", ["env", f"VRAGENT_ROOT={root}", sys.executable, "-c", _SHIM.format("update_config"),
                          "cmd_line.json"], check=False)
    assert shim.returncode == 2 and REFUSED in shim.stderr, shim.stderr
    assert (cache / "cmd_line.json").exists() and not (cache / "processed").exists()
    # A dry run only reads: it runs, and says that an apply would refuse.
    dry = agent(lab, "vr", root, "apply", "--dry-run", str(CMDLINE))
    assert dry.returncode == 0 and "a dry run only" in dry.stderr and REFUSED in dry.stderr
    assert "+192.0.2.1/24" not in dry.stdout and "address + 192.0.2.1/24 dev eth0" in dry.stdout

    assert network_of(lab, "vr") == before
    assert not (root / "var/lib/vragent/state.json").exists()

    # The operator who knows this is the router says so.
    opted = agent(lab, "vr", root, "--this-is-the-router", "apply", str(CMDLINE))
    assert opted.returncode == 0, opted.stderr
    assert "192.0.2.1/24" in lab.run("vr", ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout


def test_a_lab_root_configures_its_namespace_and_refuses_in_any_other(lab, tmp_path):
    router = RouterAgent(lab, tmp_path / "root")  # the lab marks the root as vr's
    elsewhere = network_of(lab, "up")
    moved = agent(lab, "up", router.root, "apply", str(CMDLINE))
    assert moved.returncode == 2 and f"ip netns exec {lab.ns('vr')}" in moved.stderr, moved.stderr
    assert network_of(lab, "up") == elsewhere
    apply_ok(router, CMDLINE)  # inside its namespace it works as ever


def test_an_operators_deleted_rule_shows_in_status_by_name_and_restore_repairs_it(lab, tmp_path):
    router = RouterAgent(lab, tmp_path / "root")
    apply_ok(router, sample.cmdline(), sample.ips(), sample.egress_allowed())
    clean = router.run("status")
    assert clean.returncode == 0 and "drift: none" in clean.stdout, clean.stdout

    ssh = next(line for line in router.iptables_save().splitlines()
               if line.startswith("-A vr-INPUT") and "--dport 3922" in line)
    lab.run("vr", ["iptables", "-w", "-D", *ssh.split()[1:]])  # an operator's "quick fix"
    lab.run("vr", ["sysctl", "-qw", "net.ipv4.conf.all.arp_announce=0"])

    drifted = router.run("status")
    assert drifted.returncode == 3, drifted.stdout
    assert f"iptables filter: missing rule {ssh} (should be at vr-INPUT position" in drifted.stdout, drifted.stdout
    assert "sysctl net.ipv4.conf.all.arp_announce is 0, should be 2" in drifted.stdout
    as_json = router.run("status", "--json")
    assert as_json.returncode == 3
    assert any(ssh in line for item in __import__("json").loads(as_json.stdout)["drift"]
               for line in item["differences"])

    preview = router.run("restore", "--dry-run")
    assert preview.returncode == 0 and f"+{ssh}" in preview.stdout, preview.stdout
    assert len(preview.stdout.splitlines()) < 20, preview.stdout
    assert ssh not in router.iptables_save()  # a dry run changes nothing

    restored = router.run("restore")
    assert restored.returncode == 0, restored.stderr
    assert ssh in router.iptables_save()
    log = (router.root / "var/log/cloud-scripts.log").read_text()
    assert f"restore repaired: iptables filter: missing rule {ssh}" in log
    assert "restore repaired: sysctl net.ipv4.conf.all.arp_announce is 0, should be 2" in log
    assert router.run("status").returncode == 0


def test_a_dry_run_of_one_more_forward_on_a_5000_forward_router_fits_a_screen(lab, tmp_path):
    router = RouterAgent(lab, tmp_path / "root")
    forwards = [sample.forward_rule(PF_IP, 10000 + n, VM1_IP, 22) for n in range(5000)]
    applied = router.apply(sample.cmdline(), sample.ips(), sample.forward_rules(*forwards))
    assert applied.returncode == 0, applied.errors

    text = router.dry_run_text(sample.forward_rules(sample.forward_rule(PF_IP, 9999, VM1_IP, 22)))
    lines = text.splitlines()
    assert len(lines) < 50, text
    assert max(map(len, lines)) < 400
    # 9999 is in port block 39 (9984-10239): its sub-chain (subsystems/firewall/rules.py).
    assert f"+-A vr-pf-{PF_IP}-t39 -p tcp -m tcp --dport 9999 -j DNAT --to-destination {VM1_IP}:22" in text
    assert "@@ chain vr-pf-" in text  # each hunk names its chain
    assert "@@ port_forwards: 5000 -> 5001 entries (1 added, 0 removed) @@" in text

    as_json = router.apply(sample.forward_rules(sample.forward_rule(PF_IP, 9999, VM1_IP, 22)), dry_run=True)
    assert as_json.result["status"] == "dry-run" and as_json.result["steps"]  # --json keeps the machine form
