"""The system egress rule on every path the management server sends it, proven with traffic
on a default-allow and a default-deny network (isolated router):

- router start (`finalizeNetworkRulesForNetwork`: the user egress rules and, for a
  default-allow offering only, the system rule without CIDRs, in one firewall_rules.json);
- a network restart or update (`reprogramNetworkRules`: `applyDefaultEgressFirewallRule`
  sends the system rule alone, with `dest_cidr_list: ["0.0.0.0/0"]`, then the user egress
  rules follow in a push of their own);
- an offering change from allow to deny on a running router (the system rule of a deny
  offering, no user rule at all).

A user egress rule is the exception to the default: with a default allow it denies its
port, with a default deny it allows it. tcp 8080 is the user rule's port, 8081 is none."""

from __future__ import annotations

import pytest

from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.topology import PUBLIC_GATEWAY
from vragent.lab.traffic import TcpServer
from tests.lab.checks import apply_ok, connects

RULE_PORT, OTHER_PORT = 8080, 8081
DEFAULTS = [True, False]
DEFAULT_IDS = ["default-allow", "default-deny"]


@pytest.fixture
def router(lab, tmp_path) -> RouterAgent:
    agent = RouterAgent(lab, tmp_path / "root")
    apply_ok(agent, sample.cmdline(), sample.ips())
    return agent


def user_rule(default_allow: bool) -> dict:
    return sample.egress_rule(17, ports=RULE_PORT, default_allow=default_allow)


def egress_seen(lab) -> tuple[bool, bool]:
    """Whether vm1 reaches the upstream host on the rule's port, and on another port."""
    with TcpServer(lab, "up", RULE_PORT), TcpServer(lab, "up", OTHER_PORT):
        return connects(lab, "vm1", PUBLIC_GATEWAY, RULE_PORT), connects(lab, "vm1", PUBLIC_GATEWAY, OTHER_PORT)


def expected(default_allow: bool) -> tuple[bool, bool]:
    # The rule's port is the exception, every other port follows the offering.
    return (not default_allow, default_allow)


@pytest.mark.parametrize("default_allow", DEFAULTS, ids=DEFAULT_IDS)
def test_router_start_sends_the_user_rules_and_for_an_allow_offering_the_system_rule(lab, router, default_allow):
    rules = [user_rule(default_allow)]
    if default_allow:  # createDefaultEgressFirewallRule: nothing for a deny offering
        rules.append(sample.system_egress_rule(True))
    apply_ok(router, sample.firewall_rules(*rules))
    assert egress_seen(lab) == expected(default_allow)


@pytest.mark.parametrize("default_allow", DEFAULTS, ids=DEFAULT_IDS)
def test_a_network_restart_sends_the_system_rule_with_all_destinations_then_the_user_rules(
        lab, router, default_allow):
    system_rule = sample.firewall_rules(sample.system_egress_rule(default_allow, restart=True))
    assert system_rule["rules"][0]["dest_cidr_list"] == ["0.0.0.0/0"]  # the form under test
    apply_ok(router, system_rule)
    assert egress_seen(lab) == (default_allow, default_allow)  # the policy alone, no rule
    apply_ok(router, sample.firewall_rules(user_rule(default_allow)))
    assert egress_seen(lab) == expected(default_allow)
    # The next restart resends both; nothing changes.
    apply_ok(router, system_rule, sample.firewall_rules(user_rule(default_allow)))
    assert egress_seen(lab) == expected(default_allow)


def test_an_offering_changed_to_deny_closes_egress_on_a_running_router(lab, router):
    apply_ok(router, sample.firewall_rules(sample.system_egress_rule(True)))  # started with allow
    assert egress_seen(lab) == (True, True)
    apply_ok(router, sample.firewall_rules(sample.system_egress_rule(False, restart=True)))
    assert egress_seen(lab) == (False, False)
    assert router.show()["firewall"] == {"egress_default_allow": False, "rules": []}  # the policy only
