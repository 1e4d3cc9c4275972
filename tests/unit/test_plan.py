"""Planning: in-place chain edits, jump placement, convergence (pure)."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from vragent.observe import parse_iptables_save
from vragent.plan import _chain_edits, table_step
from vragent.render.netfilter import TableSpec


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
