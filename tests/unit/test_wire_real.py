"""The management server's real pushes (tests/unit/wire_real/README.md) through the pure
pipeline: framing, parse, merge and validation of a fresh router's full resync batch and
of the day-2 pushes that follow it, then what the router renders from them."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from vragent.model import Direction, Protocol, RouterState
from vragent.pipeline import netfilter
from vragent.pipeline.intake import load_push, merge_documents

WIRE = Path(__file__).parent / "wire_real"
BATCH = next((WIRE / "resync").glob("VR-*.cfg"))
SEQUENCE = json.loads((WIRE / "day2" / "sequence.json").read_text())
STEPS = [step["step"] for step in SEQUENCE]


def push(path: Path, state: RouterState) -> RouterState:
    return merge_documents(state, load_push(path.name, path.read_text()))


def booted() -> RouterState:
    """What the router holds after postinit's `update_config.py cmd_line.json`."""
    return push(WIRE / "cmd_line.json", RouterState())


def resynced() -> RouterState:
    return push(BATCH, booted())


def after(step: str) -> RouterState:
    """The state once every day-2 push up to and including `step` is merged, in order."""
    state = resynced()
    for entry in SEQUENCE:
        for item in entry["pushes"]:
            state = push(WIRE / "day2" / item["file"], state)
        if entry["step"] == step:
            return state
    raise KeyError(step)


def step_named(prefix: str) -> str:
    return next(s for s in STEPS if s.startswith(prefix))


# --- framing ---------------------------------------------------------------------------

def test_the_resync_batch_is_split_in_the_order_the_management_server_wrote_it():
    text = BATCH.read_text()
    assert text.startswith("#Apache CloudStack Virtual Router Config File\n<version>\n1.0\n</version>\n<file>\n")
    scripts = [line.split()[1] for line in text.splitlines() if line.startswith("/opt/cloud/bin/update_config.py")]
    documents = load_push(BATCH.name, text)
    assert [d.name for d in documents] == [f"{BATCH.name}:{name}" for name in scripts]
    assert [d.data["type"] for d in documents] == [
        "ips", "firewallrules", "staticnatrules", "firewallrules", "forwardrules", "monitorservice",
        "dhcpentry", "vmdata"]
    # Gson writes one line per file and always the ConfigBase flag.
    assert all("\n" not in d.text and d.data["delete_from_processed_cache"] is False for d in documents)


def test_cmd_line_json_as_the_boot_script_writes_it_makes_an_isolated_router():
    state = booted()
    assert state.router_type == "router"
    assert str(state.control_interface) == "169.254.1.10/16"
    assert state.default_gateway == (IPv4Address("198.51.100.1"), "eth2")
    guest = state.all_guest_networks()[0]
    assert (guest.device, str(guest.network), str(guest.router_ip)) == ("eth0", "192.0.2.0/24", "192.0.2.1")


def test_an_aggregation_with_nothing_queued_is_a_batch_with_nothing_to_apply():
    # AggregationControlCommand Finish writes the header even when no command was queued (a
    # router started without reprogramming its networks, and no VM to resend).
    header = BATCH.read_text().split("<file>")[0]
    assert header == "#Apache CloudStack Virtual Router Config File\n<version>\n1.0\n</version>\n"
    assert load_push("VR-empty.cfg", header) == []
    state = resynced()
    assert merge_documents(state, []) == state


# --- the resync --------------------------------------------------------------------------

def test_the_resync_gives_the_whole_network():
    state = resynced()
    assert [str(p.ip) for p in state.ordered_public_ips()] == ["198.51.100.10", "198.51.100.20", "198.51.100.21"]
    assert state.ordered_public_ips()[0].source_nat and state.ordered_public_ips()[0].first
    assert [(str(n.public_ip), str(n.internal_ip)) for n in state.static_nats] == [("198.51.100.21", "192.0.2.11")]
    # The system egress rule (id 0, protocol all, no CIDRs) carries the policy only.
    assert state.egress_default_allow is True
    assert [(r.id, r.direction, r.protocol) for r in state.firewall_rules] == [
        ("11", Direction.INGRESS, Protocol.TCP), ("12", Direction.INGRESS, Protocol.TCP),
        ("13", Direction.INGRESS, Protocol.ICMP)]
    icmp = state.firewall_rules[2]
    assert (icmp.icmp_type, icmp.icmp_code, icmp.ports) == (None, None, None)  # -1/-1: any ICMP
    assert [(str(f.public_ip), f.public_ports.first, str(f.internal_ip), f.internal_ports.first)
            for f in state.port_forwards] == [("198.51.100.20", 2222, "192.0.2.11", 22)]
    assert [(h.hostname, h.mac, str(h.ip)) for h in state.dhcp_hosts] == [("web-01", "02:00:00:00:00:11", "192.0.2.11")]
    (vm,) = state.vm_data
    assert vm.userdata == b"#cloud-config\nruncmd:\n  - echo hello"  # unpadded base64
    assert dict(vm.metadata)["public-ipv4"] == "198.51.100.21"
    assert [s.name for s in state.monitoring.services] == ["ssh", "dhcp", "webserver"]


def test_the_resync_renders_the_rules_it_names():
    rules = netfilter.render_restore(netfilter.render(resynced()))
    assert "-A vr-dnat -d 198.51.100.21/32 -j DNAT --to-destination 192.0.2.11" in rules
    assert "-A vr-pf-198.51.100.20 -p tcp -m tcp --dport 2222 -j DNAT --to-destination 192.0.2.11:22" in rules
    assert "-A vr-fw-198.51.100.20 -s 203.0.113.10/32 -p tcp -m tcp --dport 2222 -j RETURN" in rules


# --- day 2 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("step", STEPS, ids=[s.split(":")[0].replace(" ", "-") for s in STEPS])
def test_every_day2_push_is_taken(step):
    assert after(step) is not None  # InvalidInput (exit 2) would raise with every path


def test_a_vm_added_gets_its_lease_and_data_and_a_password_offer():
    state = after(step_named("vm2 added"))
    assert [h.hostname for h in state.dhcp_hosts] == ["web-01", "db-01"]
    vm2 = next(vm for vm in state.vm_data if str(vm.ip) == "192.0.2.12")
    assert vm2.userdata is None and dict(vm2.metadata)["public-keys"] == ""  # nulls in the triples
    assert [(str(o.ip), o.password) for o in state.password_offers] == [("192.0.2.12", "fT7#qe=9&<x>'")]


def test_a_rule_added_then_revoked_leaves_the_rules_before_it():
    added = after(step_named("rule added"))
    assert [r.id for r in added.firewall_rules] == ["11", "12", "13", "14"]
    assert [f.public_ports.first for f in added.port_forwards] == [2222, 8080]
    revoked = after(step_named("rule revoked"))
    assert [r.id for r in revoked.firewall_rules] == ["11", "12", "13"]
    assert [f.public_ports.first for f in revoked.port_forwards] == [2222]


def test_a_public_ip_comes_with_its_rules_and_goes_with_them():
    associated = after(step_named("public IP associated"))
    assert "198.51.100.22" in [str(p.ip) for p in associated.public_ips]
    assert ("198.51.100.22", "192.0.2.12") in [(str(n.public_ip), str(n.internal_ip)) for n in associated.static_nats]
    gone = after(step_named("public IP disassociated"))
    assert "198.51.100.22" not in [str(p.ip) for p in gone.public_ips]
    assert all(str(n.public_ip) != "198.51.100.22" for n in gone.static_nats)
    assert "15" not in [r.id for r in gone.firewall_rules]


def test_a_load_balancer_opens_its_listener_and_the_stats_port():
    state = after(step_named("load balancer rule"))
    lb = state.load_balancing.cloudstack
    assert [(str(a.ip), a.port) for a in lb.listeners] == [("198.51.100.20", 80)]
    assert [(str(a.ip), a.port, a.sources) for a in lb.stats] == [("198.51.100.10", 8081, ())]
    assert "\tserver 198_51_100_20-80_1 192.0.2.12:80 check" in lb.configuration


def test_stats_disabled_sends_an_empty_stat_rule_and_it_means_no_stats_listener():
    state = after(step_named("the load balancer rule deleted"))
    lb = state.load_balancing.cloudstack
    assert lb.listeners == () and lb.stats == ()
    assert "listen  vmops" in lb.configuration


def test_the_health_check_refresh_keeps_the_services_it_does_not_name():
    monitoring = after(step_named("health-check settings refreshed")).monitoring
    assert [s.name for s in monitoring.services] == ["ssh", "dhcp", "webserver"]  # no `config`: kept
    assert (monitoring.health_checks_enabled, monitoring.basic_interval, monitoring.advanced_interval) == (True, 3, 10)
    assert json.loads(monitoring.health_checks_config)["systemThresholds"].startswith("minDiskNeeded=10")


def test_egress_is_denied_until_the_system_egress_rule_allows_it():
    # A deny offering with no egress rule: the management server sends no egress push at all
    # (createDefaultEgressFirewallRule only makes the system rule for a default-allow offering).
    assert booted().egress_default_allow is False
    assert resynced().egress_default_allow is True  # the resync carried the allow system rule
    flipped = after(step_named("egress default flipped to deny"))
    assert flipped.egress_default_allow is False
    assert [(r.id, r.direction) for r in flipped.firewall_rules if r.direction is Direction.EGRESS] == [
        ("17", Direction.EGRESS)]


def test_a_vm_started_from_a_template_without_password_withdraws_the_pending_one():
    # The management server pushes the literal "saved_password": the VM has no new password.
    state = after(step_named("vm2 restarted from a template without password"))
    assert [(str(o.ip), o.password) for o in state.password_offers] == [("192.0.2.12", None)]
