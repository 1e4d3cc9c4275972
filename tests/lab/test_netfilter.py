"""The core slice, proven with real traffic: source NAT, static NAT, port forwarding with
hairpin, ingress and egress firewall, SSH on the control NIC only; revocation, convergence,
invalid input, rollback and crash safety."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import stat
import time
from pathlib import Path

import pytest

from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.topology import (CONTROL_HOST_IP, CONTROL_ROUTER_IP, EXTRA_PUBLIC_IPS, PUBLIC_GATEWAY,
                                  ROUTER_GUEST_IP, SOURCE_NAT_IP, UPSTREAM_SOURCES, VM1_IP, VM2_IP)
from vragent.lab.traffic import HeldConnection, TcpServer, ping, tcp_connect
from tests.lab.checks import apply_ok, connects

PF_IP, NAT_IP = EXTRA_PUBLIC_IPS[0], EXTRA_PUBLIC_IPS[1]
ALLOWED_SOURCE, OTHER_SOURCE = UPSTREAM_SOURCES


@pytest.fixture
def router(lab, tmp_path) -> RouterAgent:
    agent = RouterAgent(lab, tmp_path / "root")
    applied = agent.apply(sample.cmdline(), sample.ips(), sample.egress_allowed())
    assert applied.returncode == 0, applied.errors
    return agent


def test_guest_reaches_upstream_with_the_source_nat_ip(lab, router):
    with TcpServer(lab, "up", 8080):
        result = tcp_connect(lab, "vm1", PUBLIC_GATEWAY, 8080)
    assert result.ok and result.peer_seen == SOURCE_NAT_IP
    apply_ok(router, sample.cmdline(), sample.ips(), sample.egress_allowed())


def test_static_nat_maps_one_public_ip_to_one_vm_both_ways(lab, router):
    apply_ok(router, sample.staticnat_rules(sample.staticnat_rule(NAT_IP, VM2_IP)),
             sample.firewall_rules(sample.firewall_rule(10, ports=80, public_ip=NAT_IP)))
    with TcpServer(lab, "vm2", 80):
        inbound = tcp_connect(lab, "up", NAT_IP, 80, source=ALLOWED_SOURCE)
    assert inbound.ok and inbound.peer_seen == ALLOWED_SOURCE
    with TcpServer(lab, "up", 8080):
        assert tcp_connect(lab, "vm2", PUBLIC_GATEWAY, 8080).peer_seen == NAT_IP
        assert tcp_connect(lab, "vm1", PUBLIC_GATEWAY, 8080).peer_seen == SOURCE_NAT_IP
    # The router itself reaches the VM through the public IP too (OUTPUT DNAT).
    with TcpServer(lab, "vm2", 81):
        assert connects(lab, "vr", NAT_IP, 81)

    apply_ok(router, sample.staticnat_rules(sample.staticnat_rule(NAT_IP, VM2_IP, revoke=True)))
    with TcpServer(lab, "vm2", 80):
        assert not connects(lab, "up", NAT_IP, 80, source=ALLOWED_SOURCE)
    with TcpServer(lab, "up", 8080):
        assert tcp_connect(lab, "vm2", PUBLIC_GATEWAY, 8080).peer_seen == SOURCE_NAT_IP


def test_port_forwarding_reaches_the_vm_and_hairpins_for_other_guests(lab, router):
    apply_ok(router, sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)),
             sample.firewall_rules(sample.firewall_rule(20, ports=2222, public_ip=PF_IP)))
    with TcpServer(lab, "vm1", 22):
        from_upstream = tcp_connect(lab, "up", PF_IP, 2222, source=ALLOWED_SOURCE)
        hairpin = tcp_connect(lab, "vm2", PF_IP, 2222)
        assert not connects(lab, "up", PF_IP, 2223, source=ALLOWED_SOURCE)
    assert from_upstream.ok and from_upstream.peer_seen == ALLOWED_SOURCE
    # The other VM's connection comes back through the router: it sees the router's guest IP.
    assert hairpin.ok and hairpin.peer_seen == ROUTER_GUEST_IP

    apply_ok(router, sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22, revoke=True)))
    with TcpServer(lab, "vm1", 22):
        assert not connects(lab, "up", PF_IP, 2222, source=ALLOWED_SOURCE)
        assert not connects(lab, "vm2", PF_IP, 2222)


def test_port_range_forwarding_maps_port_to_port(lab, router):
    apply_ok(router, sample.forward_rules(sample.forward_rule(PF_IP, (7100, 7102), VM1_IP, (8100, 8102))),
             sample.firewall_rules(sample.firewall_rule(21, ports=(7100, 7102), public_ip=PF_IP)))
    with TcpServer(lab, "vm1", 8101), TcpServer(lab, "vm1", 8102):
        assert connects(lab, "up", PF_IP, 7101)
        assert connects(lab, "up", PF_IP, 7102)


def test_many_forwards_go_by_port_block_and_each_block_reaches_its_vm(lab, router):
    """Past FORWARDS_IN_ONE_CHAIN forwards on one IP, new connections are dispatched by port
    block (subsystems/firewall/rules.py): real iptables takes the layout, it converges, the forwards
    at either end of a block and across a boundary work, and a revoked one stops."""
    from vragent.subsystems.firewall.rules import PORT_BLOCK

    first = 20 * PORT_BLOCK  # ports 5120.. : blocks 20 and 21
    forwards = [sample.forward_rule(PF_IP, first + n, VM2_IP, 9) for n in range(300) if n not in (0, 255, 256, 257)]
    forwards += [sample.forward_rule(PF_IP, first, VM1_IP, 22), sample.forward_rule(PF_IP, first + 255, VM1_IP, 23),
                 sample.forward_rule(PF_IP, (first + 256, first + 257), VM1_IP, (24, 25))]
    forwards.append(sample.forward_rule(PF_IP, (first + 511, first + 512), VM1_IP, (26, 27)))  # crosses 21|22
    firewall = sample.firewall_rules(sample.firewall_rule(30, ports=(first, first + 512), public_ip=PF_IP))
    apply_ok(router, sample.forward_rules(*forwards), firewall)
    saved = router.iptables_save()
    assert f"-A vr-pf-{PF_IP} -p tcp -m tcp --dport {first}:{first + PORT_BLOCK - 1} -j vr-pf-{PF_IP}-t20" in saved
    assert f"-A vr-pf-{PF_IP}-t20 -p tcp -m tcp --dport {first} -j DNAT --to-destination {VM1_IP}:22" in saved
    with TcpServer(lab, "vm1", 22), TcpServer(lab, "vm1", 23), TcpServer(lab, "vm1", 25), TcpServer(lab, "vm1", 27):
        assert connects(lab, "up", PF_IP, first, source=ALLOWED_SOURCE)
        assert connects(lab, "up", PF_IP, first + 255, source=ALLOWED_SOURCE)
        assert connects(lab, "up", PF_IP, first + 257, source=ALLOWED_SOURCE)
        assert connects(lab, "up", PF_IP, first + 512, source=ALLOWED_SOURCE)
        assert not connects(lab, "up", PF_IP, first + 300, source=ALLOWED_SOURCE)  # not forwarded
    apply_ok(router, sample.forward_rules(sample.forward_rule(PF_IP, first + 255, VM1_IP, 23, revoke=True)))
    with TcpServer(lab, "vm1", 23):
        assert not connects(lab, "up", PF_IP, first + 255, source=ALLOWED_SOURCE)


def test_ingress_firewall_admits_only_the_allowed_cidr_and_port(lab, router):
    forwards = sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22),
                                    sample.forward_rule(PF_IP, 2223, VM1_IP, 23))
    rule = sample.firewall_rule(30, ports=2222, public_ip=PF_IP, source_cidrs=(f"{ALLOWED_SOURCE}/32",))
    apply_ok(router, forwards, sample.firewall_rules(rule))
    with TcpServer(lab, "vm1", 22), TcpServer(lab, "vm1", 23):
        assert connects(lab, "up", PF_IP, 2222, source=ALLOWED_SOURCE)
        assert not connects(lab, "up", PF_IP, 2222, source=OTHER_SOURCE)
        assert not connects(lab, "up", PF_IP, 2223, source=ALLOWED_SOURCE)
        apply_ok(router, sample.firewall_rules(sample.firewall_rule(30, ports=2222, public_ip=PF_IP,
                                                                    source_cidrs=(f"{ALLOWED_SOURCE}/32",),
                                                                    revoked=True)))
        assert not connects(lab, "up", PF_IP, 2222, source=ALLOWED_SOURCE)


def test_icmp_to_a_public_ip_needs_a_firewall_rule(lab, router):
    assert not ping(lab, "up", PF_IP, timeout=1)
    apply_ok(router, sample.firewall_rules(sample.firewall_rule(40, protocol="icmp", public_ip=PF_IP,
                                                                icmp_type=8, icmp_code=-1)))
    assert ping(lab, "up", PF_IP, timeout=1)


def egress(rule_id, protocol="tcp", ports=None, default_allow=False, revoked=False):
    return sample.egress_rule(rule_id, protocol=protocol, ports=ports, default_allow=default_allow, revoked=revoked)


def test_egress_default_deny_blocks_and_one_allow_rule_opens_exactly_its_port(lab, router):
    with TcpServer(lab, "up", 8080), TcpServer(lab, "up", 8081):
        assert connects(lab, "vm1", PUBLIC_GATEWAY, 8081)  # the offering's default allow (system rule)
        apply_ok(router, sample.firewall_rules(sample.system_egress_rule(False, restart=True), egress(51, ports=8080)))
        assert connects(lab, "vm1", PUBLIC_GATEWAY, 8080)
        assert not connects(lab, "vm1", PUBLIC_GATEWAY, 8081)
        # Inbound connections a VM accepted are not egress: their replies still flow.
        apply_ok(router, sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)),
                 sample.firewall_rules(sample.firewall_rule(52, ports=2222, public_ip=PF_IP)))
        with TcpServer(lab, "vm1", 22):
            assert connects(lab, "up", PF_IP, 2222)
        apply_ok(router, sample.firewall_rules(egress(51, ports=8080, revoked=True)))
        assert not connects(lab, "vm1", PUBLIC_GATEWAY, 8080)
        apply_ok(router, sample.firewall_rules(sample.system_egress_rule(True)))
        assert connects(lab, "vm1", PUBLIC_GATEWAY, 8081)


def test_ssh_port_3922_only_from_the_control_side(lab, router):
    # Open 3922 in the public IP's ingress firewall so only INPUT decides.
    apply_ok(router, sample.firewall_rules(sample.firewall_rule(60, ports=3922, public_ip=SOURCE_NAT_IP)))
    with TcpServer(lab, "vr", 3922):
        assert connects(lab, "ctl", CONTROL_ROUTER_IP, 3922)
        assert not connects(lab, "vm1", ROUTER_GUEST_IP, 3922)
        assert not connects(lab, "up", SOURCE_NAT_IP, 3922)
    assert CONTROL_HOST_IP  # the control host is the management server's stand-in


def test_foreign_rules_survive_every_apply(lab, router):
    lab.run("vr", ["iptables", "-w", "-N", "operator-audit"])
    lab.run("vr", ["iptables", "-w", "-A", "operator-audit", "-s", "203.0.113.99/32", "-j", "ACCEPT"])
    lab.run("vr", ["iptables", "-w", "-A", "INPUT", "-s", "203.0.113.98/32", "-j", "operator-audit"])
    lab.run("vr", ["iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-d", "203.0.113.97/32", "-j", "RETURN"])
    apply_ok(router, sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)))
    apply_ok(router, sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22, revoke=True)))
    saved = router.iptables_save()
    assert "-A operator-audit -s 203.0.113.99/32 -j ACCEPT" in saved
    assert "-A INPUT -s 203.0.113.98/32 -j operator-audit" in saved
    assert "-A POSTROUTING -d 203.0.113.97/32 -j RETURN" in saved


def test_dry_run_prints_the_diff_and_changes_nothing(lab, router):
    before, state_before = router.iptables_save(), router.show()
    text = router.dry_run_text(sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)))
    assert f"+-A vr-dnat -d {PF_IP}/32 -j vr-pf-{PF_IP}" in text
    assert f"+-A vr-pf-{PF_IP} -p tcp -m tcp --dport 2222 -j DNAT --to-destination {VM1_IP}:22" in text
    assert "--- iptables/nat (running)" in text
    assert router.iptables_save() == before and router.show() == state_before


def snapshot(lab, router: RouterAgent) -> tuple:
    # Everything the agent keeps, but its logs and the record of the last attempt `status` shows.
    files = sorted((str(p.relative_to(router.root)), p.read_bytes()) for p in router.root.rglob("*")
                   if p.is_file() and "pushes" not in p.parts and not p.name.endswith(".log")
                   and p.name != "last-apply.json")
    addresses = lab.run("vr", ["ip", "-4", "-o", "addr", "show"]).stdout
    return router.iptables_save(), files, addresses


def test_invalid_push_lists_every_error_and_changes_nothing(lab, router):
    before = snapshot(lab, router)
    bad = sample.forward_rules(sample.forward_rule("198.51.100.99", 2222, VM1_IP, 22),
                               sample.forward_rule(PF_IP, "9:1", VM1_IP, 22))
    bad_fw = sample.firewall_rules({**sample.firewall_rule(70, ports=22, public_ip=PF_IP),
                                    "source_cidr_list": ["203.0.113.0/40"]})
    result = router.apply(bad, bad_fw)
    assert result.returncode == 2
    assert result.result["status"] == "invalid"
    messages = "\n".join(result.errors)
    assert ".rules[1].source_port_range: '9:1': the first port is above the last" in messages
    assert ".rules[0].source_cidr_list[0]: '203.0.113.0/40' is not a CIDR" in messages
    assert snapshot(lab, router) == before


def test_unsupported_type_is_refused_with_exit_2(lab, router):
    before = snapshot(lab, router)
    result = router.apply(router.write_push({"type": "ilbrules", "rules": []}, "ilb_rules.json.1"))
    assert result.returncode == 2 and "not supported yet" in result.errors[0]
    assert snapshot(lab, router) == before


FAILING_RESTORE = """#!/bin/sh
# Fault injector: the real iptables-restore, except a committing restore of the nat table fails.
input=$(cat)
case "$*" in *--test*) ;; *) printf '%s' "$input" | grep -q '^\\*nat' && { echo "injected failure" >&2; exit 1; } ;; esac
printf '%s' "$input" | exec /usr/sbin/iptables-restore "$@"
"""


# A stand-in the agent cannot vouch for (it reads the tables, rolls back with iptables-save's
# text), or one named like nf_tables' own binary (the agent plans against the tables it
# remembers verified and rolls back by refilling the chains it touched).
@pytest.mark.parametrize("injector_name", ["iptables-restore", "xtables-nft-injector"])
def test_a_ruleset_iptables_restore_rejects_rolls_back_and_the_old_one_keeps_serving(lab, router, tmp_path,
                                                                                     injector_name):
    apply_ok(router, sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)),
             sample.firewall_rules(sample.firewall_rule(80, ports=2222, public_ip=PF_IP)))
    before = snapshot(lab, router)
    injector = tmp_path / "bin"
    injector.mkdir()
    (injector / injector_name).write_text(FAILING_RESTORE)
    (injector / injector_name).chmod(0o755)
    if injector_name != "iptables-restore":
        (injector / "iptables-restore").symlink_to(injector / injector_name)
    router.env = {"PATH": f"{injector}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
    # Changes the mangle and nat tables; nat fails after mangle committed.
    result = router.apply(sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22, revoke=True),
                                               sample.forward_rule(PF_IP, 3333, VM2_IP, 22)),
                          sample.firewall_rules(sample.firewall_rule(81, ports=3333, public_ip=PF_IP)))
    assert result.returncode == 1 and result.result["status"] == "failed"
    assert "injected failure" in "\n".join(result.errors)
    assert {s["status"] for s in result.steps if s["kind"] == "iptables"} >= {"rolled back", "failed"}
    assert snapshot(lab, router) == before
    with TcpServer(lab, "vm1", 22):
        assert connects(lab, "up", PF_IP, 2222)


REJECTING_TEST = """#!/bin/sh
# Fault injector: the real iptables-restore, except rehearsing (--test) the nat table fails.
input=$(cat)
case "$*" in *--test*) printf '%s' "$input" | grep -q '^\\*nat' && { echo "injected rejection" >&2; exit 1; } ;; esac
printf '%s' "$input" | exec /usr/sbin/iptables-restore "$@"
"""


def test_a_later_table_rejected_by_its_check_changes_nothing_at_all(lab, router, tmp_path):
    # The candidates are checked all at once; the first table's commit must still wait for
    # every verdict: a rejected nat table leaves mangle (planned first) untouched too.
    apply_ok(router, sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)),
             sample.firewall_rules(sample.firewall_rule(80, ports=2222, public_ip=PF_IP)))
    before = snapshot(lab, router)
    injector = tmp_path / "bin"
    injector.mkdir()
    (injector / "iptables-restore").write_text(REJECTING_TEST)
    (injector / "iptables-restore").chmod(0o755)
    router.env = {"PATH": f"{injector}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
    result = router.apply(sample.forward_rules(sample.forward_rule(PF_IP, 3333, VM2_IP, 22)),
                          sample.firewall_rules(sample.firewall_rule(81, ports=3333, public_ip=PF_IP)),
                          sample.staticnat_rules(sample.staticnat_rule(NAT_IP, VM2_IP)))
    assert result.returncode == 1 and result.result["status"] == "failed"
    assert "candidate rejected before any change" in "\n".join(result.errors)
    statuses = {s["summary"].split(":")[0]: s["status"] for s in result.steps if s["kind"] == "iptables"}
    assert statuses["iptables nat"] == "rejected" and statuses["iptables mangle"] == "not run"
    assert snapshot(lab, router) == before
    with TcpServer(lab, "vm1", 22):
        assert connects(lab, "up", PF_IP, 2222)


def tables_of(saved: str) -> dict[str, tuple]:
    """Each table as (chains with policies, rules per chain in order); iptables-save lists
    chains in creation order, which says nothing about what the table does."""
    tables, name, chains, rules = {}, None, set(), {}
    for line in saved.splitlines():
        if line.startswith("*"):
            name, chains, rules = line[1:], set(), {}
        elif line == "COMMIT":
            tables[name] = (frozenset(chains), tuple(sorted((c, tuple(r)) for c, r in rules.items())))
        elif line.startswith(":"):
            chains.add(line.split(" [")[0])
        elif line.startswith("-A "):
            rules.setdefault(line.split()[1], []).append(line)
    return tables


def test_sigkill_at_random_points_leaves_every_table_wholly_old_or_new(lab, router):
    push_a = [sample.forward_rules(*[sample.forward_rule(PF_IP, 2000 + n, VM1_IP, 22) for n in range(300)]),
              sample.firewall_rules(sample.firewall_rule(90, ports=(2000, 2299), public_ip=PF_IP))]
    push_b = [sample.forward_rules(*[sample.forward_rule(PF_IP, 2000 + n, VM1_IP, 22, revoke=True) for n in range(300)],
                                   *[sample.forward_rule(PF_IP, 5000 + n, VM2_IP, 22) for n in range(300)]),
              sample.firewall_rules(sample.firewall_rule(90, ports=(2000, 2299), public_ip=PF_IP, revoked=True),
                                    sample.firewall_rule(91, ports=(5000, 5299), public_ip=PF_IP)),
              sample.staticnat_rules(sample.staticnat_rule(NAT_IP, VM2_IP)),
              sample.firewall_rules(sample.system_egress_rule(False, restart=True), egress(93, ports=443))]
    assert router.apply(*push_a).returncode == 0
    tables_a, state_a = tables_of(router.iptables_save()), router.show()
    assert router.apply(*push_b).returncode == 0
    tables_b, state_b = tables_of(router.iptables_save()), router.show()
    assert all(tables_a[t] != tables_b[t] for t in ("mangle", "nat", "filter"))
    # Alternate full replacements (native documents), so either can follow either.
    files_a = [router.write_push(json.dumps(state_a), "state-a.json")]
    files_b = [router.write_push(json.dumps(state_b), "state-b.json")]

    rng = random.Random(1234)
    killed_mid_apply = 0
    for trial in range(50):
        files = files_a if trial % 2 == 0 else files_b
        process = lab.popen("vr", router.command("apply", *map(str, files)))
        time.sleep(rng.uniform(0.0, 0.35))
        if process.poll() is None:
            killed_mid_apply += 1
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        tables = tables_of(router.iptables_save())
        for name in ("mangle", "nat", "filter"):
            assert tables[name] in (tables_a[name], tables_b[name]), f"trial {trial}: {name} is neither old nor new"
    assert killed_mid_apply >= 25  # the kills really landed inside applies

    final = router.apply(*files_b)
    assert final.returncode == 0, final.errors
    assert tables_of(router.iptables_save()) == tables_b
    assert router.apply(*files_b).steps == []


def test_revoking_a_nat_rule_forgets_only_its_flows(lab, router):
    apply_ok(router, sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)),
             sample.staticnat_rules(sample.staticnat_rule(NAT_IP, VM2_IP)),
             sample.firewall_rules(sample.firewall_rule(100, ports=2222, public_ip=PF_IP),
                                   sample.firewall_rule(101, ports=80, public_ip=NAT_IP)))
    with TcpServer(lab, "vm1", 22), TcpServer(lab, "vm2", 80):
        with HeldConnection(lab, "up", PF_IP, 2222) as forwarded, HeldConnection(lab, "up", NAT_IP, 80) as static:
            assert forwarded.alive() and static.alive()
            flows = lab.run("vr", ["conntrack", "-L", "-d", PF_IP], check=False).stdout
            assert "dport=2222" in flows
            apply_ok(router, sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22, revoke=True)))
            assert "dport=2222" not in lab.run("vr", ["conntrack", "-L", "-d", PF_IP], check=False).stdout
            assert static.alive()  # no flush: the static NAT flow is untouched
            assert not forwarded.alive()


def test_batch_is_one_transaction(lab, router):
    items = sample.named(sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)),
                         sample.firewall_rules(sample.firewall_rule(110, ports=2222, public_ip=PF_IP)))
    result = router.apply(sample.batch_cfg(items))
    assert result.returncode == 0, result.errors
    tables = [s["summary"].split()[1] for s in result.steps if s["kind"] == "iptables"]
    assert sorted(tables) == ["mangle:", "nat:"]  # one transaction per changed table, whatever the file count
    with TcpServer(lab, "vm1", 22):
        assert connects(lab, "up", PF_IP, 2222)

    before = snapshot(lab, router)
    broken = sample.named(sample.forward_rules(sample.forward_rule(PF_IP, 4444, VM1_IP, 22)),
                          sample.staticnat_rules(sample.staticnat_rule(PF_IP, "not-an-ip")))
    result = router.apply(sample.batch_cfg(broken))
    assert result.returncode == 2 and "destination_ip_address" in result.errors[0]
    assert snapshot(lab, router) == before


REPO = Path(__file__).resolve().parents[2]


def test_update_config_shim_keeps_the_incumbent_calling_convention(lab, router):
    cache = router.root / "var/cache/cloud"
    cache.mkdir(parents=True, exist_ok=True)
    name, payload = sample.named(sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)))[0]
    (cache / name).write_text(sample.wire_json(payload))
    shim = [router.python, str(REPO / "packaging/update_config.py"), name]
    env = ["env", f"VRAGENT_ROOT={router.root}"]
    assert lab.run("vr", env + shim, check=False).returncode == 0
    assert (cache / "processed" / f"{name}.gz").exists() and not (cache / name).exists()
    assert lab.run("vr", env + shim, check=False).returncode == 0  # a retry of a processed file succeeds

    bad_name, bad = sample.named(sample.staticnat_rules(sample.staticnat_rule("198.51.100.99", VM2_IP)))[0]
    (cache / bad_name).write_text(sample.wire_json(bad))
    failed = lab.run("vr", env + [router.python, str(REPO / "packaging/update_config.py"), bad_name], check=False)
    assert failed.returncode == 2 and "198.51.100.99 is not a public IP" in failed.stderr
    assert (cache / "processed" / f"{bad_name}.failed.gz").exists()


def test_vr_cfg_shim_exits_non_zero_when_the_batch_fails(lab, router, tmp_path):
    batch = tmp_path / sample.batch_file_name()
    batch.write_text(sample.batch_cfg(sample.named(sample.staticnat_rules(sample.staticnat_rule(NAT_IP, "bad")))))
    shim = ["env", f"VRAGENT_ROOT={router.root}", "sh", str(REPO / "packaging/vr_cfg.sh"), "-c", str(batch)]
    env_python = {"PYTHONPATH": str(REPO)}
    result = lab.run("vr", ["env", *(f"{k}={v}" for k, v in env_python.items()), *shim], check=False)
    assert result.returncode == 2, result.stderr
    assert not batch.exists()


def test_show_prints_the_state_document_and_it_applies_back_as_a_replacement(lab, router, tmp_path):
    apply_ok(router, sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)))
    document = router.show()
    assert document["format"] == "vragent/1" and len(document["port_forwards"]) == 1
    document["port_forwards"] = []
    replacement = tmp_path / "state.json"
    replacement.write_text(json.dumps(document))
    assert router.apply(replacement).returncode == 0
    assert "vr-dnat -d" not in router.iptables_save() and "vr-pf-" not in router.iptables_save()
    assert stat.S_IMODE((router.root / "var/lib/vragent/state.json").stat().st_mode) == 0o600


def test_a_push_waiting_for_the_lock_gives_up_clearly_and_changes_nothing(lab, router):
    import fcntl

    lock_path = router.root / "run/vragent/apply.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    before = snapshot(lab, router)
    with open(lock_path, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        # What a holding apply writes about itself (vragent.lock), an operator's long push.
        holder.write(json.dumps({"pid": 4242, "what": "push VR-slow.cfg", "since": time.time() - 30}))
        holder.flush()
        files = [router.write_push(sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)))]
        started = time.monotonic()
        proc = router.run("apply", "--json", "--lock-timeout", "0.5", *map(str, files))
        waited = time.monotonic() - started
        slow = router.run("apply", "--lock-timeout", "1.5", *map(str, files))
        holder.truncate(0)  # as a holder leaves it when it lets go
    result = json.loads(proc.stdout)
    assert proc.returncode == 1 and result["status"] == "failed"
    message = result["errors"][0]["message"]
    assert re.search(r"held by pid 4242 \(push VR-slow.cfg\) for 3\d s", message), message
    assert "nothing was changed" in message
    assert 0.5 <= waited < 5
    # Waiting longer than a second, a push says whom it waits for, and gives up with one line.
    assert "waiting for the apply lock, held by pid 4242 (push VR-slow.cfg)" in slow.stderr, slow.stderr
    assert slow.returncode == 1 and "Traceback" not in slow.stderr
    assert snapshot(lab, router) == before
    # Taken at once, the wait is reported apart from the phases.
    applied = router.apply(sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)))
    assert applied.returncode == 0 and 0 <= applied.result["lock_wait_ms"] < 1000
    assert "lock_wait" not in applied.result["phases_ms"]


def test_concurrent_pushes_are_serialised_and_none_is_lost(lab, router):
    files = [router.write_push(sample.forward_rules(sample.forward_rule(PF_IP, 3000 + n, VM1_IP, 22)))
             for n in range(6)]
    processes = [lab.popen("vr", router.command("apply", str(path))) for path in files]
    assert [p.wait(timeout=60) for p in processes] == [0] * 6
    saved = router.iptables_save()
    assert all(f"--dport {3000 + n} -j DNAT" in saved for n in range(6))
    assert len(router.show()["port_forwards"]) == 6


def test_drift_in_owned_chains_is_repaired_and_foreign_chains_are_untouched(lab, router):
    push = sample.forward_rules(*[sample.forward_rule(PF_IP, 2000 + n, VM1_IP, 22) for n in range(10)])
    apply_ok(router, push)
    committed = router.iptables_save()
    lab.run("vr", ["iptables", "-w", "-t", "nat", "-D", f"vr-pf-{PF_IP}", "3"])
    lab.run("vr", ["iptables", "-w", "-A", "vr-INPUT", "-s", "203.0.113.66/32", "-j", "ACCEPT"])
    lab.run("vr", ["iptables", "-w", "-N", "foreign"])
    lab.run("vr", ["iptables", "-w", "-A", "foreign", "-j", "RETURN"])
    repaired = router.apply(push)
    assert repaired.returncode == 0 and {"iptables"} <= repaired.kinds()
    saved = router.iptables_save()
    assert "-A foreign -j RETURN" in saved and "203.0.113.66" not in saved
    assert saved.replace(":foreign - [0:0]\n", "").replace("-A foreign -j RETURN\n", "") == committed


def test_remembered_tables_are_trusted_only_while_nf_tables_counts_no_change(lab, router):
    """A no-op re-apply skips reading the tables back only while the kernel's ruleset
    generation is where the agent verified them; any change by anyone means a full read."""
    push = (sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)),
            sample.firewall_rules(sample.firewall_rule(20, ports=2222, public_ip=PF_IP)))
    apply_ok(router, *push)
    remembered, full = router.reapply(*push)
    assert full.result["forks"] == remembered.result["forks"] + 1  # the one iptables-save

    # A foreign rule moves the generation: the next apply reads every table and keeps it.
    lab.run("vr", ["iptables", "-w", "-A", "INPUT", "-s", "203.0.113.91/32", "-j", "ACCEPT"])
    after_foreign = router.apply(*push)
    assert after_foreign.result["status"] == "unchanged"
    assert after_foreign.result["forks"] == full.result["forks"]
    assert "-A INPUT -s 203.0.113.91/32 -j ACCEPT" in router.iptables_save()
    assert router.apply(*push).result["forks"] == remembered.result["forks"]  # trusted again

    # Drift inside an owned chain is seen and repaired the same way.
    lab.run("vr", ["iptables", "-w", "-t", "nat", "-F", "vr-dnat"])
    repaired = router.apply(*push)
    assert repaired.returncode == 0 and repaired.kinds() == {"iptables"}
    with TcpServer(lab, "vm1", 22):
        assert connects(lab, "up", PF_IP, 2222, source=ALLOWED_SOURCE)
    apply_ok(router, *push)
