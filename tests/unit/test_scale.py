"""Scale: how the rendered ruleset grows with the router (rule counts per table, so rule
growth cannot change unnoticed), and the port-block layout of a public IP with many
forwards, walked packet by packet: every forward still DNATs to its VM, nothing else does,
and a new connection walks a bounded number of rules, not every forward."""

from __future__ import annotations

import re

import pytest

from tests.unit import pushes as p
from vragent.model import RouterState
from vragent.pipeline import netfilter
from vragent.subsystems.firewall.rules import PORT_BLOCK
from vragent.tables import TableSpec
from vragent.pipeline.intake import merge_documents

PUBLIC_IPS = ["198.51.100.20", "198.51.100.21"]


def router(forwards: int = 0, firewall: int = 0, hosts: int = 0, static_nats: int = 0) -> RouterState:
    """An isolated router (guest 10.0.0.0/16) with that many of each, spread over two IPs."""
    pushed = [p.doc("cmd_line.json", p.cmdline(eth0ip="10.0.0.1", eth0mask="255.255.0.0", guestgw="10.0.0.1")),
              p.doc("ips.json", p.ips(p.public_ip("198.51.100.10", source_nat=True, first=True),
                                      *[p.public_ip(ip) for ip in PUBLIC_IPS],
                                      *[p.public_ip(f"198.51.100.{100 + n}") for n in range(static_nats)]))]
    vm = [f"10.0.{n // 250}.{n % 250 + 2}" for n in range(max(forwards, firewall, hosts, static_nats))]
    if forwards:
        pushed.append(p.doc("fw.json", p.forwards(*[
            p.forward(PUBLIC_IPS[n % 2], f"{10000 + n}:{10000 + n}", vm[n], "22:22") for n in range(forwards)])))
    if firewall:
        pushed.append(p.doc("fi.json", p.firewall(*[
            p.ingress(1000 + n, PUBLIC_IPS[n % 2], ports=(10000 + n, 10000 + n)) for n in range(firewall)])))
    for n in range(hosts):
        pushed.append(p.doc(f"h{n}", {"type": "dhcpentry", "host_name": f"vm-{n}", "ipv4_address": vm[n],
                                      "mac_address": f"02:42:00:00:{n // 256:02x}:{n % 256:02x}",
                                      "default_entry": True, "remove": False}))
    if static_nats:
        pushed.append(p.doc("sn.json", {"type": "staticnatrules", "rules": [
            p.static_nat(f"198.51.100.{100 + n}", vm[n])["rules"][0] for n in range(static_nats)]}))
    return merge_documents(RouterState(), pushed)


def rule_counts(state: RouterState) -> dict[str, int]:
    return {key: spec.rule_count() for key, spec in netfilter.render(state).items()}


# (forwards, firewall rules, hosts, static NATs) -> rules per table. Each row is exact:
# a change in how many rules a router of that size gets must be seen and meant.
RULE_COUNTS = [
    ((0, 0, 0, 0), {"raw": 0, "mangle": 14, "nat": 5, "filter": 29}),
    ((10, 10, 10, 2), {"raw": 0, "mangle": 34, "nat": 21, "filter": 29}),
    ((100, 100, 100, 5), {"raw": 0, "mangle": 136, "nat": 117, "filter": 29}),
    # From here each IP's forwards (ports 10000 up, alternating IPs) go by port block:
    # 4 blocks an IP at 1,000, 20 at 5,000, each one dispatch rule.
    ((1000, 1000, 1000, 5), {"raw": 0, "mangle": 1036, "nat": 1025, "filter": 29}),
    ((5000, 5000, 5000, 5), {"raw": 0, "mangle": 5036, "nat": 5057, "filter": 29}),
]


@pytest.mark.parametrize("sizes,expected", RULE_COUNTS, ids=[str(row[0]) for row in RULE_COUNTS])
def test_rules_per_table_by_router_size(sizes, expected):
    assert rule_counts(router(*sizes)) == expected


def test_rules_grow_linearly_with_rules_not_with_hosts():
    """Hosts add no rule; each forward or firewall rule adds one, plus one dispatch rule
    per port block in use."""
    small, large = rule_counts(router(1000, 1000, 0)), rule_counts(router(2000, 2000, 2000))
    assert large["filter"] == small["filter"]
    assert large["mangle"] - small["mangle"] == 1000
    assert 1000 <= large["nat"] - small["nat"] <= 1000 + 2 * (2000 // PORT_BLOCK + 2)


# -- walking the nat table -------------------------------------------------------------

RULE = re.compile(r"^-A (\S+)(?: -d (\S+))?(?: -p (\w+) -m \w+ --dport (\d+)(?::(\d+))?)? -j (\S+)"
                  r"(?: --to-destination (\S+))?$")


def walk(spec: TableSpec, destination: str, protocol: str, port: int) -> tuple[str | None, int]:
    """Where a new connection to destination:port ends in vr-dnat: (DNAT target or None,
    rules looked at on the way)."""
    looked = 0

    def run(chain: str) -> str | None:
        nonlocal looked
        for line in spec.chains.get(chain, []):
            looked += 1
            match = RULE.match(line)
            assert match, f"the walker does not know {line!r}"
            _, dest, proto, first, last, target, to = match.groups()
            if dest is not None and dest != f"{destination}/32":
                continue
            if proto is not None and (proto != protocol or not int(first) <= port <= int(last or first)):
                continue
            if target == "DNAT":
                return to
            found = run(target)
            if found is not None:
                return found
        return None

    return run("vr-dnat"), looked


def forwards_state(rules: list[dict]) -> RouterState:
    return merge_documents(router(), [p.doc("fw.json", p.forwards(*rules))])


def test_a_few_forwards_stay_one_flat_chain():
    state = forwards_state([p.forward(PUBLIC_IPS[0], f"{n}:{n}", "10.0.0.5", "22:22") for n in range(1, 40)])
    nat = netfilter.render(state)["nat"]
    assert [c for c in nat.chains if c.startswith("vr-pf-")] == [f"vr-pf-{PUBLIC_IPS[0]}"]


def test_many_forwards_are_dispatched_by_port_block_and_each_still_reaches_its_vm():
    rules, expected = [], {}
    for n in range(3000):  # tcp 1..3000 on one IP, each to its own VM
        rules.append(p.forward(PUBLIC_IPS[0], f"{n + 1}:{n + 1}", f"10.0.{n // 250}.{n % 250 + 2}", "22:22"))
        expected[("tcp", n + 1)] = f"10.0.{n // 250}.{n % 250 + 2}:22"
    # udp ranges, one crossing a block boundary, one shifted range
    rules.append(p.forward(PUBLIC_IPS[0], "250:260", "10.0.50.2", "250:260", protocol="udp"))
    rules.append(p.forward(PUBLIC_IPS[0], "5000:5009", "10.0.50.3", "6000:6009", protocol="udp"))
    rules.append(p.forward(PUBLIC_IPS[1], "22:22", "10.0.50.4", "22:22"))
    state = forwards_state(rules)
    nat = netfilter.render(state)["nat"]
    worst = 0
    for (protocol, port), target in expected.items():
        found, looked = walk(nat, PUBLIC_IPS[0], protocol, port)
        assert found == target, (protocol, port)
        worst = max(worst, looked)
    # vr-dnat (two IPs), the crossing rules and dispatch rules of one IP, one block.
    assert worst <= 2 + 2 + 3000 // PORT_BLOCK + 1 + PORT_BLOCK, worst
    for port in (250, 255, 256, 260):  # the range that crosses a block boundary
        assert walk(nat, PUBLIC_IPS[0], "udp", port)[0] == "10.0.50.2:250-260"
    assert walk(nat, PUBLIC_IPS[0], "udp", 5003)[0] == "10.0.50.3:6000-6009/5000"
    assert walk(nat, PUBLIC_IPS[1], "tcp", 22)[0] == "10.0.50.4:22"
    # Nothing else is forwarded: other ports, the other protocol, the other IP.
    for protocol, port, ip in (("tcp", 3001, PUBLIC_IPS[0]), ("tcp", 0, PUBLIC_IPS[0]), ("udp", 1, PUBLIC_IPS[0]),
                               ("udp", 261, PUBLIC_IPS[0]), ("tcp", 2, PUBLIC_IPS[1]), ("tcp", 2, "198.51.100.10")):
        assert walk(nat, ip, protocol, port)[0] is None, (protocol, port, ip)


def test_one_added_forward_changes_one_block_only():
    rules = [p.forward(PUBLIC_IPS[0], f"{n + 1}:{n + 1}", "10.0.0.5", "22:22") for n in range(1000)]
    before = netfilter.render(forwards_state(rules))["nat"].chains
    after = netfilter.render(forwards_state(rules + [p.forward(PUBLIC_IPS[0], "2000:2000", "10.0.0.6", "80:80")]))["nat"].chains
    changed = {chain for chain in set(before) | set(after) if before.get(chain) != after.get(chain)}
    assert changed == {f"vr-pf-{PUBLIC_IPS[0]}", f"vr-pf-{PUBLIC_IPS[0]}-t7"}


def test_chain_names_fit_iptables():
    rules = [p.forward("198.51.100.20", f"{port}:{port}", "10.0.0.5", "22:22", protocol="udp")
             for port in range(65400, 65536)]
    nat = netfilter.render(forwards_state(rules))["nat"]
    assert all(len(chain) <= 28 for chain in nat.chains)  # XT_EXTENSION_MAXNAMELEN - 1
    assert walk(nat, "198.51.100.20", "udp", 65535)[0] == "10.0.0.5:22"


# -- what a VM's push leaves alone ------------------------------------------------------

GOLDEN_DIRS = ["golden", "golden_haproxy", "golden_metadata", "golden_redundancy", "golden_shared"]


def golden_states():
    import json
    from pathlib import Path

    from vragent.pipeline.intake import Document

    here = Path(__file__).parent
    for directory in GOLDEN_DIRS:
        for case in sorted((here / directory).glob("*.json")):
            data = json.loads(case.read_text())
            if "pushes" not in data:
                continue
            try:
                yield case.name, merge_documents(RouterState(), [Document(n, payload) for n, payload in data["pushes"]])
            except Exception:  # noqa: BLE001 - a case of refused pushes renders nothing
                continue


def test_no_table_depends_on_the_vms_dhcp_entries_data_or_passwords():
    """engine.TABLE_FREE_FIELDS: a push changing only these leaves the tables as verified
    (neither rendered nor read). On every golden router, and on a shared network with IP
    aliases whose subnets' gateways come from the entries, the tables render the same with
    those sections emptied and with others in their place."""
    from dataclasses import replace
    from ipaddress import IPv4Address

    from vragent import engine
    from vragent.model import DhcpHost, PasswordOffer, VmData
    from vragent.subsystems.ipv6 import rules as netfilter6

    def tables(state):
        return {key: (spec.policies, spec.jumps, spec.chains)
                for key, spec in {**netfilter.render(state), **netfilter6.render(state)}.items()}

    others = {"dhcp_hosts": (DhcpHost("02:00:00:00:00:99", IPv4Address("192.0.2.99"), "other",
                                      gateway=IPv4Address("192.0.2.254")),),
              "vm_data": (VmData(IPv4Address("192.0.2.99"), b"x"),),
              "password_offers": (PasswordOffer(IPv4Address("192.0.2.99"), "pw"),)}
    checked = 0
    for name, state in golden_states():
        rendered = tables(state)
        assert tables(replace(state, **{f: () for f in engine.TABLE_FREE_FIELDS})) == rendered, name
        assert tables(replace(state, **{f: others[f] for f in engine.TABLE_FREE_FIELDS})) == rendered, name
        checked += 1
    assert checked >= 15
    assert set(others) == set(engine.TABLE_FREE_FIELDS)


def test_only_a_change_outside_the_table_free_sections_counts():
    from dataclasses import replace
    from ipaddress import IPv4Address

    from vragent import engine
    from vragent.model import DhcpHost

    state = router(forwards=3, hosts=3)
    host = DhcpHost("02:00:00:00:00:99", IPv4Address("10.0.9.9"), "other")
    assert engine.tables_unaffected(state, replace(state, dhcp_hosts=state.dhcp_hosts + (host,)))
    assert not engine.tables_unaffected(state, replace(state, port_forwards=state.port_forwards[1:]))
    assert not engine.tables_unaffected(state, replace(state, egress_default_allow=not state.egress_default_allow))
