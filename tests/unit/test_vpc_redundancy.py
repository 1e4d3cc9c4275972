"""A redundant VPC pair (pure): the cmdline the management server sends, VRRP on the first
tier with every tier's gateway as a VIP, what the role means for the public and private
gateway NICs and the static routes, and a VPC router that has no tier yet."""

from __future__ import annotations

import json
from ipaddress import IPv4Interface
from pathlib import Path

from vragent import engine
from vragent.subsystems.vrrp import model as redundancy
from vragent.lab import sample_vpc as vpc
from vragent.lab.topology import SOURCE_NAT_IP
from vragent.model import RouterState
from vragent.paths import Paths
from vragent.subsystems.vrrp.model import Role, Vip
from vragent.subsystems.vrrp import keepalived
from vragent.subsystems.vrrp import render as vrrp_render, service as vrrp_service, verify as vrrp_verify
from vragent.pipeline.intake import Document, merge_documents


def merged(*payloads: dict) -> RouterState:
    docs = [Document(f"{p['type']}.json.{i}", json.loads(json.dumps(p))) for i, p in enumerate(payloads)]
    return merge_documents(RouterState(), docs)


def pair_state(router: int = 2, tiers: int = 2) -> RouterState:
    return merged(*vpc.pair_vpc(router, tiers),
                  vpc.ips(vpc.ip_entry(SOURCE_NAT_IP, source_nat=True), vpc.private_gateway_entry()),
                  vpc.static_routes(vpc.static_route(), vpc.static_route("198.18.0.0/15", "10.70.2.254",
                                                                         ip_address=None)))


def desired(state: RouterState, role: Role, root: Path):
    return engine.render(state, Paths(root), role=role, tables=False)


def routes(plan) -> list[str]:
    return sorted(str(r) for r in plan.links.static_routes)


def test_the_cmdline_of_a_redundant_vpc_router_is_accepted_and_vrrp_runs_on_the_first_tier():
    state = pair_state()
    vrrp = redundancy.settings(state)
    assert (vrrp.interface, vrrp.vrid, vrrp.advert_int, vrrp.priority, str(vrrp.own_ip)) == \
        ("eth2", 201, 1, redundancy.DEFAULT_PRIORITY, "10.70.1.3")
    assert [str(v) for v in vrrp.vips] == ["10.70.1.1/24 dev eth2", "10.70.2.1/24 dev eth3"]
    assert vrrp.password == vpc.PAIR_PASSWORD[:8]
    # Both routers agree: same VRID, VIPs, password (their own tier addresses differ).
    assert redundancy.settings(pair_state(1)).fingerprint() == vrrp.fingerprint()
    assert vrrp_render.standby_down_devices(state) == ("eth1", "eth4")


def test_the_backup_keeps_its_public_and_private_gateway_nics_down_and_only_tier_routes(tmp_path):
    state = pair_state()
    backup = desired(state, Role.BACKUP, tmp_path)
    # Every configured NIC is brought up (hot-plugged NICs come down), but the public and
    # private-gateway NICs follow the role.
    assert backup.links.admin_up == {"eth0": True, "eth1": False, "eth2": True, "eth3": True, "eth4": False}
    assert backup.links.default_route is None
    assert routes(backup) == ["198.18.0.0/15 via 10.70.2.254 dev eth3 proto 77 table 254"]
    assert backup.links.foreign == {"eth2": {IPv4Interface("10.70.1.1/24")}, "eth3": {IPv4Interface("10.70.2.1/24")}}
    assert IPv4Interface("10.70.1.1/24") not in backup.links.addresses["eth2"]
    assert {d.service: d.standby for d in backup.daemons if d.enabled}["dnsmasq"] is True

    primary = desired(state, Role.PRIMARY, tmp_path)
    assert primary.links.admin_up == {"eth0": True, "eth1": True, "eth2": True, "eth3": True, "eth4": True}
    assert primary.links.addresses["eth2"] == (IPv4Interface("10.70.1.3/24"), IPv4Interface("10.70.1.1/24"))
    assert primary.links.addresses["eth3"] == (IPv4Interface("10.70.2.3/24"), IPv4Interface("10.70.2.1/24"))
    assert routes(primary) == ["10.90.0.0/16 via 10.80.5.1 dev eth4 proto 77 table 254",
                               "198.18.0.0/15 via 10.70.2.254 dev eth3 proto 77 table 254"]
    assert not any(d.standby for d in primary.daemons)


def test_a_vpc_router_without_a_tier_yet_is_valid_and_stays_standby(tmp_path):
    """The cmdline and the public IP come before any tier: no VRRP yet, and the router must
    not bring the shared public NIC up, whatever role file it has."""
    state = merged(vpc.pair_cmdline(1), vpc.ips())
    assert redundancy.settings(state) is None and vrrp_verify.check_state(state) == []
    for role in Role:
        plan = desired(state, role, tmp_path)
        assert plan.links.admin_up == {"eth0": True, "eth1": False} and plan.links.default_route is None
        assert not next(d for d in plan.daemons if d.service == "keepalived").enabled


def test_a_removed_tiers_vip_is_left_to_keepalived_on_the_primary(tmp_path):
    """Tier 2 goes: its VIP is keepalived's to drop when it reloads the new keepalived.conf
    (removed behind its back, a MASTER goes BACKUP and back: a transition)."""
    paths = Paths(tmp_path)
    conf = keepalived.KeepalivedPaths.of(paths).conf
    conf.parent.mkdir(parents=True)
    conf.write_text(keepalived.render_config(redundancy.settings(pair_state()), paths))
    assert vrrp_service.configured_vips(paths) == {Vip("eth2", IPv4Interface("10.70.1.1/24")),
                                                 Vip("eth3", IPv4Interface("10.70.2.1/24"))}
    one_tier = merged(*vpc.pair_vpc(2), vpc.pair_guestnetwork(2, 2, add=False))
    primary = desired(one_tier, Role.PRIMARY, tmp_path)
    assert primary.links.foreign.get("eth3") == {IPv4Interface("10.70.2.1/24")}
    assert primary.links.addresses["eth3"] == ()  # the router's own address there goes
