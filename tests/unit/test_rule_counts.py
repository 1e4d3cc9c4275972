"""How many rules each table gets for a router of a given size: a table of input sizes -> rules
per table, so a change in rule growth (one more rule per forward, a chain per rule) cannot
go unnoticed. Update a row only for an intended change, and say why in the commit."""

from __future__ import annotations

import pytest

from tests.unit import pushes as p
from vragent.model import RouterState
from vragent.pipeline import netfilter
from vragent.pipeline.intake import Document, merge_documents


def public_ip(index: int) -> str:
    return f"198.51.100.{10 + index}"


def isolated(public_ips: int, forwards_per_ip: int, ingress_per_ip: int, egress: int) -> RouterState:
    """An isolated router: the source-NAT IP plus `public_ips - 1` more, each of the extra IPs
    with its forwards (to VM1) and ingress rules, and `egress` egress rules."""
    ips = [p.public_ip(public_ip(i), source_nat=i == 0, first=i == 0) for i in range(public_ips)]
    forwards, rules = [], []
    for i in range(1, public_ips):
        for n in range(forwards_per_ip):
            forwards.append(p.forward(public_ip(i), str(1000 + n), "192.0.2.11", str(2000 + n)))
        for n in range(ingress_per_ip):
            rules.append(p.ingress(len(rules) + 1, public_ip(i), ports=(1000 + n, 1000 + n)))
    first_egress = len(rules) + 1
    rules += [p.egress(first_egress + n, "tcp", ports=(3000 + n, 3000 + n)) for n in range(egress)]
    documents = [Document("cmd_line.json", p.cmdline()), Document("ips.json", p.ips(*ips)),
                 Document("fw.json", p.firewall(*rules)), Document("pf.json", p.forwards(*forwards))]
    return merge_documents(RouterState(), documents)


def counts(state: RouterState) -> dict[str, int]:
    return {name: spec.rule_count() for name, spec in netfilter.render(state).items()}


# (public IPs, forwards per extra IP, ingress rules per extra IP, egress rules) -> rules per table
ISOLATED = [
    ((1, 0, 0, 0), {"raw": 0, "mangle": 8, "nat": 5, "filter": 29}),
    ((2, 10, 10, 0), {"raw": 0, "mangle": 21, "nat": 16, "filter": 29}),
    ((3, 100, 100, 10), {"raw": 0, "mangle": 214, "nat": 207, "filter": 39}),
    ((11, 100, 100, 100), {"raw": 0, "mangle": 1038, "nat": 1015, "filter": 129}),
]


@pytest.mark.parametrize(("size", "expected"), ISOLATED, ids=[str(size) for size, _ in ISOLATED])
def test_rules_per_table_of_an_isolated_router(size, expected):
    assert counts(isolated(*size)) == expected


def test_growth_is_one_rule_per_forward_and_per_ingress_rule():
    """Each forward adds one nat rule (in its IP's vr-pf chain), each ingress rule one mangle
    rule (in its IP's vr-fw chain), each egress rule one filter rule: never more."""
    small, big = counts(isolated(2, 10, 10, 10)), counts(isolated(2, 20, 30, 40))
    assert big["nat"] - small["nat"] == 10
    assert big["mangle"] - small["mangle"] == 20
    assert big["filter"] - small["filter"] == 30
