"""Golden files: each case holds its pushes and the full rendered output.

Regenerate after an intended change with VRAGENT_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit import golden
from vragent.tables import IP6_TABLES
from vragent.model import RouterState
from vragent.subsystems.network import render as addresses, routing, sysctl
from vragent.pipeline import netfilter
from vragent.subsystems.ipv6 import rules as netfilter6, render as radvd
from vragent.pipeline.intake import Document, merge_documents

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*.json"))


def render_case(pushes: list) -> dict:
    state = merge_documents(RouterState(), [Document(name, payload) for name, payload in pushes])
    policy = routing.render(state)
    rendered = {"iptables": netfilter.render_restore(netfilter.render(state)).splitlines(),
                "sysctl": sysctl.file_content(sysctl.render(state)).splitlines(),
                "ip rule": sorted(map(str, policy.rules)),
                "ip route": sorted(map(str, policy.routes)),
                "rt_tables": (routing.rt_tables(policy) or "").splitlines()}
    if state.ipv6 is not None:  # dual stack only: IPv4-only cases keep exactly their outputs
        rendered["ip6tables"] = netfilter.render_restore(netfilter6.render(state), IP6_TABLES).splitlines()
        rendered["addresses"] = {device: list(map(str, interfaces))
                                 for device, interfaces in addresses.render(state).addresses.items()}
        gateway, device = addresses.render(state).default_route6
        rendered["ip -6 route"] = f"default via {gateway} dev {device}"
        rendered["radvd.conf"] = radvd.config_text(state).splitlines()
    if state.private_gateways or state.static_routes:  # only VPC cases with them carry these
        links = addresses.render(state)
        rendered["addresses"] = {device: list(map(str, interfaces))
                                 for device, interfaces in links.addresses.items() if interfaces}
        rendered["static routes"] = sorted(map(str, links.static_routes))
    if state.remote_access_vpn is not None or state.site_to_site_vpns:  # only cases with a VPN carry its files
        from vragent.paths import Paths
        from vragent.subsystems.vpn import render as vpn

        on_a_vr = Paths.from_root("/")
        rendered["strongswan.conf"] = vpn.strongswan_conf(on_a_vr).splitlines()
        rendered["swanctl.conf"] = vpn.swanctl_conf(state).splitlines()
    if state.remote_access_vpn is not None:
        rendered["xl2tpd.conf"] = vpn.xl2tpd_conf(state, on_a_vr).splitlines()
        rendered["options.xl2tpd"] = vpn.ppp_options(state).splitlines()
        rendered["chap-secrets"] = vpn.chap_secrets(state.vpn_users).splitlines()
    return rendered


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden(case: Path):
    golden.check(case, lambda data: render_case(data["pushes"]))


def test_there_are_golden_cases():
    assert len(CASES) >= 3
