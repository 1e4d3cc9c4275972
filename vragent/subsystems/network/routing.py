"""Policy routing for public NICs: traffic that belongs to a public NIC leaves by it (pure).

The main table's default route goes out of the source-NAT NIC (the layout's first public
NIC: eth2 on an isolated router, eth1 on a VPC). A connection that came in on another
public NIC (an isolated router's eth3, a VPC's eth4: port forwarding or static NAT on an
IP of a second public VLAN), and a static-NAT VM's own traffic, must leave by its own NIC
instead, or the upstream drops it (wrong source for that path). Each public NIC ethN with
a gateway gets:

- routing table 100+N (`Table_ethN`, named in rt_tables.d for operators): `default via
  <its gateway> dev ethN`, and throw routes for the router's guest networks (a VPC's
  tiers), its control network and its own public networks, so those are still reached
  through main (never via a public gateway: traffic between tiers stays inside);
- rules `fwmark 0x(100+N) lookup 100+N` (connections marked in mangle, see
  render/netfilter.py `_policy_marks`) and `from <its public network> lookup 100+N`
  (the router's own replies from that NIC's addresses).

Numbers and marks are the incumbent's (cloudstack-vr.md "Device numbers map to routing
tables"), since operators' diagnostics grep them. vragent owns table 100+N of each of its
ethN NICs (N >= 1: a VPC's first public NIC is eth1; on an isolated router eth1 is the
control NIC and its table stays empty) and the rules at priorities 1100-1299 that look up
such a table; every other rule and table is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network

from vragent.model import ISOLATED_ROUTER, VPC_ROUTER, RouterState, device_index
from vragent.shell.netlink import Route, Rule

TABLE_BASE = 100  # Table_ethN = 100 + N, mark 0x(100+N)
MARK_RULE_PRIORITY = 1100  # + N: fwmark 0x(100+N) lookup 100+N
SOURCE_RULE_PRIORITY = 1200  # + N: from <public network> lookup 100+N
_OWNED_PRIORITIES = range(MARK_RULE_PRIORITY, SOURCE_RULE_PRIORITY + 100)
_OWNED_TABLES = range(TABLE_BASE + 1, TABLE_BASE + 100)
# Router types with public NICs and NAT: their layouts say which NICs are public.
_ROUTED_TYPES = (ISOLATED_ROUTER, VPC_ROUTER)
RT_TABLES_FILE = "etc/iproute2/rt_tables.d/vragent.conf"
DEFAULT = IPv4Network("0.0.0.0/0")


def table_of(device: str) -> int:
    return TABLE_BASE + device_index(device)


def mark_of(device: str) -> int:
    return table_of(device)


def table_name(device: str) -> str:
    return f"Table_{device}"


def owns_rule(rule: Rule) -> bool:
    return rule.priority in _OWNED_PRIORITIES and rule.table in _OWNED_TABLES


def owned_tables(devices) -> set[int]:
    """The tables vragent manages on a router with these NICs: 100+N of each ethN, N >= 1
    (the lowest public NIC of any layout: a VPC's eth1)."""
    return {table_of(d) for d in devices if d.startswith("eth") and 1 <= device_index(d) < 100}


@dataclass(frozen=True)
class PolicyRouting:
    devices: tuple[str, ...] = ()  # public NICs with their own table, in device order
    rules: frozenset[Rule] = frozenset()
    routes: frozenset[Route] = frozenset()

    def without_gateways(self) -> "PolicyRouting":
        """For a NIC kept down (a redundant BACKUP): the kernel refuses, and drops, routes
        via a gateway on a down link; rules and throw routes stay, so nothing else moves."""
        return replace(self, routes=frozenset(r for r in self.routes if r.gateway is None))


def public_gateways(state: RouterState) -> dict[str, IPv4Address]:
    """Public NIC -> its gateway: that of its first IP (source NAT first) with a usable one."""
    gateways: dict[str, IPv4Address] = {}
    for pip in state.ordered_public_ips():
        if pip.gateway is not None and pip.gateway in pip.interface.network:
            gateways.setdefault(pip.device, pip.gateway)
    return gateways


def render(state: RouterState) -> PolicyRouting:
    gateways = public_gateways(state)
    if state.router_type not in _ROUTED_TYPES or not gateways:
        return PolicyRouting()
    inside: list[IPv4Network] = [n.network for n in state.all_guest_networks()]
    if state.control_interface is not None:
        inside.append(state.control_interface.network)
    # A VPC's private gateways and the networks behind its static routes are reached by the
    # main table too: a connection marked for a public NIC (a static-NAT VM's) must never
    # take that NIC's default route to them.
    from vragent.subsystems.network import static_routes

    inside += [p.network for p in state.private_gateways]
    inside += [route.destination for route in static_routes.render(state)]
    rules: set[Rule] = set()
    routes: set[Route] = set()
    devices = tuple(sorted(gateways, key=device_index))
    for device in devices:
        table, index = table_of(device), device_index(device)
        own = {p.interface.network for p in state.ordered_public_ips() if p.device == device}
        rules.add(Rule(MARK_RULE_PRIORITY + index, table, fwmark=mark_of(device)))
        rules |= {Rule(SOURCE_RULE_PRIORITY + index, table, source=network) for network in own}
        routes.add(Route(table, DEFAULT, gateways[device], device))
        # Its own network too: neighbours on that segment are reached directly, not via the gateway.
        routes |= {Route(table, network, kind="throw") for network in (*inside, *own)}
    return PolicyRouting(devices, frozenset(rules), frozenset(routes))


def rt_tables(routing: PolicyRouting) -> str | None:
    """rt_tables.d lines naming the tables (`ip rule` then shows `lookup Table_eth3`); None: no file."""
    if not routing.devices:
        return None
    return ("# Generated by vragent: policy routing tables of the public NICs; do not edit.\n"
            + "".join(f"{table_of(d)}\t{table_name(d)}\n" for d in routing.devices))
