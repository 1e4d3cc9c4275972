"""Redundant pairs (pure): golden keepalived.conf/conntrackd.conf, pair validation, the role's
effect on the desired router and on the plan, notify parsing, the role record."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from tests.unit import pushes as p
from tests.unit import golden
from vragent.tables import TABLES
from vragent.subsystems.vrrp import model as redundancy
from vragent.shell import roles
from vragent.subsystems.vrrp import render as vrrp_render
from vragent.errors import InvalidInput
from vragent.model import RouterState
from vragent.values import Link
from vragent.desired import Observed, ObservedTable
from vragent.paths import Paths
from vragent.desired import DaemonDesired, Desired
from vragent.pipeline.plan import build
from vragent.subsystems.vrrp.model import Role
from vragent.subsystems.network import render as addresses
from vragent.subsystems.vrrp import conntrackd, keepalived
from vragent.subsystems.dhcp import render as dnsmasq
from vragent.pipeline import netfilter
from vragent.pipeline.intake import merge_documents
from vragent import engine

GOLDEN = Path(__file__).parent / "golden_redundancy"
CASES = sorted(GOLDEN.glob("*.json"))
ROOT = Paths(Path("/"))
PYTHON = "/usr/bin/python3"


def redundant_cmdline(router: int = 1, **overrides) -> dict:
    values = {"eth0ip": f"192.0.2.{1 + router}", "guestgw": "192.0.2.1", "redundant_router": "true",
              "router_id": "101", "router_pr": str(100 - router), "advert_int": "1", "name": f"r-{100 + router}-VM",
              "eth1ip": f"169.254.1.{9 + router}"}
    values.update(overrides)
    return p.cmdline(**values)


def guest_network(router: int = 1, device: str = "eth0", ip: str | None = None, gateway: str = "192.0.2.1",
                  prefix: str = "24") -> dict:
    return {"type": "guestnetwork", "add": True, "device": device, "mac_address": "02:00:00:00:01:00",
            "router_guest_ip": ip or f"192.0.2.{1 + router}", "router_guest_netmask": "255.255.255.0",
            "router_guest_gateway": gateway, "cidr": prefix, "dns": "192.0.2.1", "domain_name": "lab.internal"}


def state_of(*payloads: dict) -> RouterState:
    return merge_documents(RouterState(), [p.doc(f"push-{i}.json", payload) for i, payload in enumerate(payloads)])


def errors_of(*payloads: dict) -> list[str]:
    with pytest.raises(InvalidInput) as raised:
        state_of(*payloads)
    return [str(e) for e in raised.value.errors]


def public() -> dict:
    return p.ips(p.public_ip("198.51.100.10", source_nat=True, first=True), p.public_ip("198.51.100.20"))


# -- golden files -------------------------------------------------------------------------------

def render_case(pushes: list) -> dict:
    state = merge_documents(RouterState(), [p.doc(name, payload) for name, payload in pushes])
    vrrp = redundancy.settings(state)
    rules = netfilter.render(state)["filter"].chains["vr-INPUT"]
    return {"keepalived.conf": keepalived.render_config(vrrp, ROOT, cache=False).splitlines(),
            "vragent-notify": keepalived.notify_script(ROOT, PYTHON).splitlines(),
            "conntrackd.conf": conntrackd.render_config(vrrp, ROOT, cache=False).splitlines(),
            "vr-INPUT": rules, "fingerprint": vrrp.fingerprint()}


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden(case: Path):
    golden.check(case, lambda data: render_case(data["pushes"]))


def test_there_are_golden_cases():
    assert len(CASES) >= 3


def test_both_routers_of_a_pair_render_the_same_vrrp_settings():
    one = redundancy.settings(state_of(redundant_cmdline(1), public(), guest_network(1)))
    two = redundancy.settings(state_of(redundant_cmdline(2), public(), guest_network(2)))
    assert one.fingerprint() == two.fingerprint()
    assert (one.interface, one.vrid, one.advert_int, one.password, one.vips) == \
           (two.interface, two.vrid, two.advert_int, two.password, two.vips)
    assert (one.priority, one.own_ip) == (99, IPv4Address("192.0.2.2"))
    assert (two.priority, two.own_ip) == (98, IPv4Address("192.0.2.3"))
    # Only the pair-wide settings count: another password is another pair.
    other = redundancy.settings(state_of(redundant_cmdline(1, router_password="s3cret"), public(), guest_network(1)))
    assert other.fingerprint() != one.fingerprint() and other.password == "s3cret"


def test_the_vrid_comes_from_router_id_and_always_fits():
    assert [redundancy.vrid_of(str(n)) for n in (1, 51, 255, 256, 812)] == [1, 51, 255, 1, 47]


def test_ordinary_pushes_do_not_change_what_keepalived_and_conntrackd_run_with():
    base = [redundant_cmdline(1), public(), guest_network(1)]
    before = render_case([(f"push-{i}", payload) for i, payload in enumerate(base)])
    more = base + [p.forwards(p.forward("198.51.100.20", "2222:2222", "192.0.2.11", "22:22")),
                   p.firewall(p.ingress(1, "198.51.100.20", ports=(2222, 2222))),
                   p.ips(p.public_ip("198.51.100.21"))]
    after = render_case([(f"push-{i}", payload) for i, payload in enumerate(more)])
    assert after["keepalived.conf"] == before["keepalived.conf"]
    assert after["conntrackd.conf"] == before["conntrackd.conf"]


def test_a_standalone_router_runs_neither_daemon_nor_accepts_vrrp():
    state = state_of(p.cmdline(), public())
    assert redundancy.settings(state) is None
    assert not keepalived.daemon(state, ROOT).enabled and not conntrackd.daemon(state, ROOT).enabled
    assert not any("vrrp" in rule or "3780" in rule for rule in netfilter.render(state)["filter"].chains["vr-INPUT"])


# -- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, path, message", [
    ({"router_id": ""}, "router_id", "is required on a redundant router"),
    ({"router_id": "r7"}, "router_id", "'r7' is not a positive integer"),
    ({"router_id": "0"}, "router_id", "'0' is not a positive integer"),
    ({"router_pr": "255"}, "router_pr", "'255' is not a VRRP priority 1..254"),
    ({"router_pr": "0"}, "router_pr", "'0' is not a VRRP priority 1..254"),
    ({"advert_int": "0"}, "advert_int", "'0' is not an advertisement interval of 1..60"),
    ({"advert_int": "1.5"}, "advert_int", "'1.5' is not an advertisement interval"),
    ({"advert_int": "600"}, "advert_int", "'600' is not an advertisement interval"),
    ({"router_password": "two words"}, "router_password", "must be printable, without spaces"),
    ({"router_password": "pa#ss"}, "router_password", "must be printable"),
    ({"guestgw": ""}, "guestgw", "is required on a redundant router: it is the VRRP VIP"),
    ({"guestgw": "192.0.2.2"}, "guestgw", "the VIP 192.0.2.2 is this router's own guest address (eth0)"),
    ({"guestgw": "192.0.2.255"}, "guestgw", "the VIP 192.0.2.255 is the network or broadcast address"),
    ({"guestgw": "10.9.9.9"}, "guestgw", "the VIP 10.9.9.9 is outside the guest network 192.0.2.0/24"),
])
def test_a_cmdline_that_could_split_the_pair_is_refused_with_its_path(overrides, path, message):
    errors = errors_of(redundant_cmdline(1, **overrides), public())
    assert any(e.startswith(f"push-0.json:$.cmd_line.{path}: {message}") for e in errors), errors


def test_a_guest_network_whose_gateway_is_the_routers_own_address_is_refused():
    errors = errors_of(redundant_cmdline(1), public(), guest_network(1, gateway="192.0.2.2"))
    assert errors == ["push-2.json:$.router_guest_gateway: the VIP 192.0.2.2 is this router's own guest "
                      "address (eth0); on a redundant pair the gateway must differ from each router's own "
                      "address, or both answer for it"]


def test_vrrp_on_a_nic_that_also_holds_public_ips_is_refused():
    cmdline = redundant_cmdline(1, eth0ip="0.0.0.0", guestgw="")
    errors = errors_of(cmdline, public(), guest_network(1, device="eth2", ip="10.60.2.2", gateway="10.60.2.1"))
    assert "push-2.json:$.device: VRRP would run on eth2, which also holds public IPs; it must run on a " \
           "guest-only NIC" in errors, errors


def test_a_router_turned_redundant_later_is_checked_against_its_saved_state():
    saved = state_of(p.cmdline(), public())  # standalone: the gateway is its own address
    with pytest.raises(InvalidInput) as raised:
        merge_documents(saved, [p.doc("cmd_line.json", p.cmdline(redundant_router="true", router_id="7"))])
    assert [str(e) for e in raised.value.errors] == [
        "cmd_line.json:$.cmd_line.guestgw: the VIP 192.0.2.1 is this router's own guest address (eth0); on a "
        "redundant pair the gateway must differ from each router's own address, or both answer for it"]


def test_a_standalone_router_keeps_its_gateway_as_its_own_address():
    assert redundancy.settings(state_of(p.cmdline(), public())) is None


# -- the role shapes the desired router -----------------------------------------------------------

def desired_for(role: Role, release_vips: bool = False, root: Path = Path("/nonexistent")) -> Desired:
    state = state_of(redundant_cmdline(1), public(), guest_network(1))
    paths = Paths(root)
    desired = Desired(tables=netfilter.render(state), sysctls={}, links=addresses.render(state), files={},
                      daemons=[dnsmasq.daemon(state, paths), conntrackd.daemon(state, paths),
                               keepalived.daemon(state, paths)],
                      runtime=engine.runtime(paths))
    return vrrp_render.shape(desired, state, role, release_vips)


VIP = IPv4Interface("192.0.2.1/24")
OWN = IPv4Interface("192.0.2.2/24")


def standby(desired: Desired) -> dict[str, bool]:
    return {d.service: d.standby for d in desired.daemons}


def test_a_primary_holds_the_vip_after_its_own_address_and_brings_its_public_nic_up():
    desired = desired_for(Role.PRIMARY)
    assert desired.links.addresses["eth0"] == (OWN, VIP)
    assert desired.links.admin_up == {"eth2": True}
    assert desired.links.default_route == (IPv4Address("198.51.100.1"), "eth2")
    assert desired.links.public and not desired.links.foreign
    assert standby(desired) == {"dnsmasq": False, "conntrackd": False, "keepalived": False}


@pytest.mark.parametrize("role", [Role.BACKUP, Role.FAULT])
def test_a_router_that_is_not_primary_holds_back_public_nics_and_primary_only_daemons(role):
    desired = desired_for(role)
    assert desired.links.addresses["eth0"] == (OWN,)
    assert desired.links.foreign == {"eth0": frozenset({VIP})}  # keepalived's: never added, never removed
    assert desired.links.admin_up == {"eth2": False}
    assert desired.links.default_route is None and not desired.links.public
    assert standby(desired) == {"dnsmasq": True, "conntrackd": False, "keepalived": False}
    # The public addresses stay configured on the down NIC: becoming PRIMARY is a link up.
    assert IPv4Interface("198.51.100.10/24") in desired.links.addresses["eth2"]


def test_haproxy_is_a_primary_only_daemon_too():
    state = state_of(redundant_cmdline(1), public(), guest_network(1))
    haproxy = DaemonDesired(service="haproxy", enabled=True, files={})
    desired = Desired(tables={}, sysctls={}, links=addresses.render(state), files={}, daemons=[haproxy])
    assert [d.standby for d in vrrp_render.shape(desired, state, Role.BACKUP).daemons] == [True]
    assert [d.standby for d in vrrp_render.shape(desired, state, Role.PRIMARY).daemons] == [False]


def test_leaving_the_pair_because_keepalived_died_releases_the_vip_and_leaves_the_pair_daemons_alone():
    desired = desired_for(Role.FAULT, release_vips=True)
    assert desired.links.foreign == {} and VIP not in desired.links.addresses["eth0"]
    assert standby(desired) == {"dnsmasq": True}  # keepalived and conntrackd are the supervisor's


def observed(eth0: set, eth2_up: bool, running: dict, desired: Desired, route=None, policy=None) -> Observed:
    tables = {name: ObservedTable(name, f"*{name}\nCOMMIT\n") for name in TABLES}
    files = {str(path): content for d in desired.daemons for path, (content, _) in d.files.items()}
    policy = policy or desired.links.policy  # policy routing as converged, unless told
    return Observed(tables=tables, sysctls={}, read_only_sysctls=set(), default_route=route,
                    policy_rules=set(policy.rules), policy_routes=set(policy.routes),
                    links={"eth0": Link("eth0", 2, "02:00:00:00:01:00", 1500),
                           "eth1": Link("eth1", 3, "02:00:00:00:01:01", 1500),
                           "eth2": Link("eth2", 4, "02:00:00:00:01:02", 1500, up=eth2_up)},
                    addresses={"eth0": eth0, "eth1": {IPv4Interface("169.254.1.10/16")},
                               "eth2": {IPv4Interface("198.51.100.10/24"), IPv4Interface("198.51.100.20/24")}},
                    files=files, running=running)


def kinds(plan) -> list[str]:
    return [s.summary() for s in plan.steps if s.kind in ("link", "address", "route", "service")]


def test_a_backup_plan_takes_the_public_nic_down_stops_dnsmasq_and_leaves_the_vip_alone():
    desired = desired_for(Role.BACKUP)
    plan = build(desired, observed({OWN, VIP}, True, {"dnsmasq": 10, "conntrackd": 11, "keepalived": 12}, desired))
    assert kinds(plan) == ["link eth2 down", "dnsmasq: stop (standby: this redundant router is not PRIMARY)"]
    converged = build(desired, observed({OWN, VIP}, False, {"dnsmasq": None, "conntrackd": 11, "keepalived": 12},
                                        desired))
    assert kinds(converged) == []  # a second apply on a BACKUP changes nothing


def test_a_primary_plan_brings_the_nic_up_before_its_route_and_starts_dnsmasq():
    desired = desired_for(Role.PRIMARY)
    plan = build(desired, observed({OWN, VIP}, False, {"dnsmasq": None, "conntrackd": 11, "keepalived": 12},
                                   desired, policy=desired_for(Role.BACKUP).links.policy))
    assert kinds(plan) == ["link eth2 up", "route none -> default via 198.51.100.1 dev eth2",
                           "route + default via 198.51.100.1 dev eth2 table 102",
                           "dnsmasq: start (not running)"]


def test_a_backup_keeps_its_policy_rules_and_throw_routes_but_no_route_via_a_public_gateway():
    # The kernel refuses (and drops) routes via a gateway on a down NIC.
    primary, backup = desired_for(Role.PRIMARY).links.policy, desired_for(Role.BACKUP).links.policy
    assert backup.rules == primary.rules and backup.rules
    assert {r for r in primary.routes if r.gateway is None} == backup.routes
    assert [str(r) for r in primary.routes - backup.routes] == ["default via 198.51.100.1 dev eth2 table 102"]


def test_a_released_fault_plan_removes_the_vip():
    desired = desired_for(Role.FAULT, release_vips=True)
    plan = build(desired, observed({OWN, VIP}, True, {"dnsmasq": 10, "conntrackd": 11, "keepalived": None},
                                   desired))
    assert kinds(plan) == ["link eth2 down", "address - 192.0.2.1/24 dev eth0",
                           "dnsmasq: stop (standby: this redundant router is not PRIMARY)"]


# -- notify FIFO and the role record ------------------------------------------------------------

@pytest.mark.parametrize("line, role", [
    ('INSTANCE "vragent_guest" MASTER 99\n', Role.PRIMARY),
    ('INSTANCE "vragent_guest" BACKUP 99\n', Role.BACKUP),
    ('INSTANCE "vragent_guest" FAULT 0\n', Role.FAULT),
    ('INSTANCE "vragent_guest" STOP 99\n', Role.FAULT),
    ('INSTANCE "someone_else" MASTER 99\n', None),
    ('GROUP "g" MASTER\n', None),
    ('garbage "\n', None),
])
def test_keepalived_notify_lines(line, role):
    assert redundancy.parse_notify(line) is role


def test_the_role_record_counts_changes_not_repeats(tmp_path):
    paths = Paths(tmp_path)
    assert roles.current_role(paths) is Role.BACKUP  # never PRIMARY before keepalived said so
    roles.write_role(paths, Role.BACKUP, "keepalived: BACKUP")
    roles.write_role(paths, Role.PRIMARY, "keepalived: MASTER")
    roles.write_role(paths, Role.PRIMARY, "keepalived: MASTER")
    record = roles.write_role(paths, Role.FAULT, "keepalived is not running", released=True)
    assert (record.role, record.transitions, record.released) == (Role.FAULT, 2, True)
    assert roles.read_role(paths) == record
    (tmp_path / "run/vragent/redundant-state").write_text("not json")
    assert roles.read_role(paths) is None and roles.current_role(paths) is Role.BACKUP
