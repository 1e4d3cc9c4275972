"""Planning: in-place chain edits, jump placement, convergence (pure)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from hypothesis import given, settings, strategies as st

from tests.unit import pushes
from vragent.model import RouterState
from vragent.values import Link, Route, Rule
from vragent.shell.netlink import parse_policy_dump
from vragent.desired import Observed, parse_iptables_save
from vragent.pipeline.plan import _chain_edits, _policy_steps, table_step
from vragent.subsystems.network import routing
from vragent.desired import LinkPlan
from vragent.tables import TableSpec
from vragent.desired import PolicyRouting
from vragent.tables import owns_rule
from vragent.pipeline.intake import merge_documents


def simulate(current: list[str], chain: str, edits: list[str]) -> list[str]:
    """Apply -F/-A/-D N/-I N edits the way iptables-restore does."""
    rules = list(current)
    for edit in edits:
        words = edit.split(" ", 3)
        if words[0] == "-F":
            rules = []
        elif words[0] == "-A":
            rules.append(edit)
        elif words[0] == "-D":
            del rules[int(words[2]) - 1]
        elif words[0] == "-I":
            rules.insert(int(words[2]) - 1, f"-A {chain} {words[3]}")
    return rules


rule_lists = st.lists(st.sampled_from([f"-A vr-x -s 203.0.113.{n}/32 -j ACCEPT" for n in range(12)]), max_size=12)


@settings(max_examples=400, deadline=None)
@given(current=rule_lists, wanted=rule_lists)
def test_chain_edits_turn_any_chain_into_any_other(current, wanted):
    assert simulate(current, "vr-x", _chain_edits("vr-x", current, wanted)) == wanted


def test_one_added_rule_is_one_insert_not_a_refill():
    current = [f"-A vr-dnat -d 198.51.100.20/32 -p tcp -m tcp --dport {port} -j DNAT --to-destination 192.0.2.11:22"
               for port in range(2000, 3000)]
    wanted = current[:500] + ["-A vr-dnat -d 198.51.100.20/32 -p tcp -m tcp --dport 9999 -j DNAT "
                              "--to-destination 192.0.2.11:22"] + current[500:]
    edits = _chain_edits("vr-dnat", current, wanted)
    assert edits == ["-I vr-dnat 501 -d 198.51.100.20/32 -p tcp -m tcp --dport 9999 -j DNAT --to-destination 192.0.2.11:22"]


SAVED = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:vr-INPUT - [0:0]
:vr-old - [0:0]
:foreign - [0:0]
-A INPUT -s 203.0.113.5/32 -j ACCEPT
-A INPUT -j vr-INPUT
-A vr-INPUT -i lo -j ACCEPT
-A vr-old -j DROP
-A foreign -j ACCEPT
COMMIT
"""


def test_jumps_move_to_the_top_and_stale_owned_chains_go_but_foreign_rules_stay():
    observed = parse_iptables_save(SAVED)["filter"]
    spec = TableSpec("filter", policies={"INPUT": "DROP"}, jumps={"INPUT": ["-A INPUT -j vr-INPUT"]},
                     chains={"vr-INPUT": ["-A vr-INPUT -i lo -j ACCEPT"]})
    step = table_step(spec, observed)
    lines = step.script.splitlines()
    assert lines == ["*filter", "-D INPUT -j vr-INPUT", "-I INPUT 1 -j vr-INPUT", "-F vr-old", "-X vr-old", "COMMIT"]
    assert not any("foreign" in line or "203.0.113.5" in line for line in lines)


def test_converged_table_plans_nothing():
    observed = parse_iptables_save(SAVED.replace(":vr-old - [0:0]\n", "").replace("-A vr-old -j DROP\n", "")
                                   .replace("-A INPUT -s 203.0.113.5/32 -j ACCEPT\n-A INPUT -j vr-INPUT\n",
                                            "-A INPUT -j vr-INPUT\n-A INPUT -s 203.0.113.5/32 -j ACCEPT\n"))["filter"]
    spec = TableSpec("filter", policies={"INPUT": "DROP"}, jumps={"INPUT": ["-A INPUT -j vr-INPUT"]},
                     chains={"vr-INPUT": ["-A vr-INPUT -i lo -j ACCEPT"]})
    assert table_step(spec, observed) is None


# -- planning against remembered tables, and undoing it ---------------------------------------

def run_script(chains: dict[str, list[str]], policies: dict[str, str], script: str) -> None:
    """Apply an iptables-restore --noflush script to a model table, as iptables does."""
    for line in script.splitlines()[1:-1]:
        words = line.split(" ", 3)
        if line.startswith(":"):
            chains.setdefault(words[0][1:], [])
        elif words[0] == "-P":
            policies[words[1]] = words[2]
        elif words[0] == "-F":
            chains[words[1]] = []
        elif words[0] == "-X":
            assert not chains[words[1]] and not any(f"-j {words[1]}" in r for c in chains.values() for r in c)
            del chains[words[1]]
        elif words[0] == "-A":
            chains[words[1]].append(line)
        elif words[0] == "-I":
            chains[words[1]].insert(int(words[2]) - 1, f"-A {words[1]} {words[3]}")
        elif words[0] == "-D" and words[2].isdigit():
            del chains[words[1]][int(words[2]) - 1]
        elif words[0] == "-D":
            chains[words[1]].remove("-A" + line[2:])
        else:
            raise AssertionError(line)


PF_RULES = [f"-p tcp -m tcp --dport {port} -j DNAT --to-destination 192.0.2.11:22" for port in range(2000, 2006)]


def nat_spec(forwards: dict[str, list[str]], policy: str) -> TableSpec:
    spec = TableSpec("nat", {"OUTPUT": policy}, {"PREROUTING": ["-A PREROUTING -j vr-dnat"]}, {"vr-dnat": []})
    if forwards:
        spec.jumps["OUTPUT"] = ["-A OUTPUT -j vr-dnat"]
    for ip, rules in forwards.items():
        spec.chains["vr-dnat"].append(f"-A vr-dnat -d {ip}/32 -j vr-pf-{ip}")
        spec.chains[f"vr-pf-{ip}"] = [f"-A vr-pf-{ip} {rule}" for rule in rules]
    return spec


forwards_by_ip = st.dictionaries(st.sampled_from(["198.51.100.20", "198.51.100.21", "198.51.100.22"]),
                                 st.lists(st.sampled_from(PF_RULES), max_size=5, unique=True), max_size=3)


@settings(max_examples=300, deadline=None)
@given(old=forwards_by_ip, new=forwards_by_ip, old_policy=st.sampled_from(["ACCEPT", "DROP"]),
       new_policy=st.sampled_from(["ACCEPT", "DROP"]))
def test_a_plan_against_remembered_tables_commits_exactly_and_its_undo_puts_everything_back(
        old, new, old_policy, new_policy):
    from vragent.shell.observe import remembered_tables

    before, after = nat_spec(old, old_policy), nat_spec(new, new_policy)
    remembered = remembered_tables({"nat": (before.policies, before.jumps, before.chains)})["nat"]
    step = table_step(after, remembered)
    if step is None:
        assert (before.policies, before.jumps, before.chains) == (after.policies, after.jumps, after.chains)
        return
    # The running table also holds rules vragent does not own, below its jumps.
    foreign = {"PREROUTING": ["-A PREROUTING -s 203.0.113.9/32 -j RETURN"], "OUTPUT": []}
    chains = {name: list(rules) for name, rules in before.chains.items()}
    for builtin in ("PREROUTING", "OUTPUT"):
        chains[builtin] = before.jumps.get(builtin, []) + foreign[builtin]
    policies = dict(before.policies)
    original = ({k: list(v) for k, v in chains.items()}, dict(policies))

    run_script(chains, policies, step.script)
    assert policies == after.policies
    assert {c: r for c, r in chains.items() if c.startswith("vr-")} == after.chains
    for builtin in ("PREROUTING", "OUTPUT"):
        assert chains[builtin] == after.jumps.get(builtin, []) + foreign[builtin]
    assert step.touched_chains >= {c for c in after.chains if after.chains[c] != before.chains.get(c)}

    run_script(chains, policies, step.undo_script)
    assert (chains, policies) == original


# -- policy routing -----------------------------------------------------------------------------

# `ip -N -4 -j -batch -` of `rule show` and `route show table all`, as iproute2 6.1 prints them.
IP_DUMP = (
    '[{"priority":0,"src":"all","table":"255"},{"priority":1103,"src":"all","fwmark":"0x67","table":"103"},'
    '{"priority":1150,"src":"all","fwmark":"0x1","table":"50"},{"priority":1203,"src":"203.0.113.128","srclen":25,'
    '"table":"103"},{"priority":1300,"src":"all","iif":"eth9","table":"103"},{"priority":32766,"src":"all",'
    '"table":"254"},{"priority":32767,"src":"all","table":"253"}]\n'
    '[{"dst":"default","gateway":"203.0.113.129","dev":"eth3","table":"103","protocol":"4","flags":[]},'
    '{"type":"9","dst":"192.0.2.0/24","table":"103","protocol":"4","flags":[]},'
    '{"dst":"10.9.0.0/16","gateway":"203.0.113.129","dev":"eth3","table":"150","flags":[]},'
    '{"dst":"203.0.113.128/25","dev":"eth3","protocol":"2","scope":"253","prefsrc":"203.0.113.130","flags":[]}]\n')


def test_the_ip_dump_parses_into_plain_rules_and_the_routes_of_the_asked_tables():
    rules, routes = parse_policy_dump(IP_DUMP, {102, 103})
    assert sorted(map(str, rules)) == ["0: from all lookup 255", "1103: from all fwmark 0x67 lookup 103",
                                       "1150: from all fwmark 0x1 lookup 50",
                                       "1203: from 203.0.113.128/25 lookup 103", "32766: from all lookup 254",
                                       "32767: from all lookup 253"]  # the iif rule is never ours
    assert sorted(map(str, routes)) == ["default via 203.0.113.129 dev eth3 table 103", "throw 192.0.2.0/24 table 103"]
    assert sorted(str(r) for r in rules if owns_rule(r)) == ["1103: from all fwmark 0x67 lookup 103",
                                                             "1203: from 203.0.113.128/25 lookup 103"]


def _links(*names):
    return {name: Link(name, index, "02:00:00:00:01:0%d" % index, 1500) for index, name in enumerate(names, 2)}


def _policy_plan(observed_rules, observed_routes, wanted):
    observed = Observed(tables={}, sysctls={}, links=_links("eth0", "eth1", "eth2", "eth3"), addresses={},
                        default_route=None, read_only_sysctls=set(),
                        policy_rules=set(observed_rules), policy_routes=set(observed_routes))
    links = LinkPlan(addresses={}, default_route=None, mtu={}, public=frozenset(), policy=wanted)
    return [step.summary() for step in _policy_steps(links, observed)]


def test_a_new_public_nic_gets_its_routes_before_the_rules_that_look_them_up():
    state = merge_documents(RouterState(), pushes.base_network() + [
        pushes.doc("ip_associations.json.2",
                   pushes.ips(dict(pushes.public_ip("203.0.113.50", nic=3), gateway="203.0.113.1")))])
    wanted = routing.render(state)
    before = [r for r in wanted.rules if r.table == 102], [r for r in wanted.routes if r.table == 102]
    assert _policy_plan(*before, wanted) == [
        "route + default via 203.0.113.1 dev eth3 table 103", "route + throw 169.254.0.0/16 table 103",
        "route + throw 192.0.2.0/24 table 103", "route + throw 203.0.113.0/24 table 103",
        "ip rule + 1103: from all fwmark 0x67 lookup 103", "ip rule + 1203: from 203.0.113.0/24 lookup 103"]
    assert _policy_plan(wanted.rules, wanted.routes, wanted) == []  # converged


def test_a_nic_without_public_ips_loses_its_rules_and_then_its_routes():
    stale_rules = {Rule(1103, 103, fwmark=0x67), Rule(1203, 103, source=IPv4Network("203.0.113.0/24"))}
    stale_routes = {Route(103, IPv4Network("0.0.0.0/0"), IPv4Address("203.0.113.1"), "eth3"),
                    Route(103, IPv4Network("192.0.2.0/24"), kind="throw")}
    assert _policy_plan(stale_rules, stale_routes, PolicyRouting()) == [
        "ip rule - 1103: from all fwmark 0x67 lookup 103", "ip rule - 1203: from 203.0.113.0/24 lookup 103",
        "route - default via 203.0.113.1 dev eth3 table 103", "route - throw 192.0.2.0/24 table 103"]


def test_routes_for_a_nic_the_router_lacks_are_not_planned():
    wanted = PolicyRouting(("eth7",), frozenset({Rule(1107, 107, fwmark=0x6b)}),
                           frozenset({Route(107, IPv4Network("192.0.2.0/24"), kind="throw")}))
    assert _policy_plan(set(), set(), wanted) == []


# -- a VPC's static routes in the main table ----------------------------------------------------

def test_only_main_table_routes_of_vragents_protocol_are_read_as_static_routes():
    dump = IP_DUMP.replace('[{"dst":"default"', '[{"dst":"10.90.0.0/16","gateway":"10.80.5.1","dev":"eth4",'
                           '"protocol":"77","flags":[]},{"dst":"10.91.0.0/16","gateway":"10.80.5.1","dev":"eth4",'
                           '"protocol":"4","flags":[]},{"dst":"default"')
    _, routes = parse_policy_dump(dump, {103, 254})
    assert sorted(map(str, routes)) == ["10.90.0.0/16 via 10.80.5.1 dev eth4 proto 77 table 254",
                                        "default via 203.0.113.129 dev eth3 table 103", "throw 192.0.2.0/24 table 103"]


def test_static_route_steps_add_the_missing_delete_the_stale_and_leave_a_converged_table_alone():
    from ipaddress import IPv4Address, IPv4Network

    from vragent.pipeline.plan import _static_route_steps

    def route(network, gateway):
        return Route(254, IPv4Network(network), IPv4Address(gateway), "eth4", protocol=77)

    kept, moved, stale = route("10.90.0.0/16", "10.80.5.1"), route("192.0.2.0/24", "10.80.5.9"), \
        route("198.18.0.0/15", "10.80.5.1")
    observed = Observed(tables={}, sysctls={}, links=_links("eth0", "eth1", "eth4"), addresses={},
                        default_route=None, read_only_sysctls=set(),
                        static_routes={kept, stale, route("192.0.2.0/24", "10.80.5.1")})
    links = LinkPlan(addresses={}, default_route=None, mtu={}, public=frozenset(),
                     static_routes=frozenset({kept, moved}))
    assert [s.summary() for s in _static_route_steps(links, observed)] == [
        "route - 192.0.2.0/24 via 10.80.5.1 dev eth4 proto 77 table 254",
        "route - 198.18.0.0/15 via 10.80.5.1 dev eth4 proto 77 table 254",
        "route + 192.0.2.0/24 via 10.80.5.9 dev eth4 proto 77 table 254"]
    observed.static_routes = {kept, moved}
    assert _static_route_steps(links, observed) == []
