"""The router's whole netfilter state, rendered exactly as `iptables-save` prints it.

vragent owns every chain whose name starts with `vr-` and refills them wholesale;
built-in chains get only jump rules at their top, so rules others add to built-in
or foreign chains are left alone. Rule text must match iptables-save's output byte
for byte (option order, `/32` on hosts, `-m tcp` after `-p tcp`), otherwise the
agent would never converge: tests/lab/test_netfilter_roundtrip.py proves it.

Layout (router type: eth0 guest, eth1 control, eth2+ public):
  mangle PREROUTING -> vr-PREROUTING: guest NICs RETURN, then per public IP
         -d ip -> vr-fw-<ip>: established, the ingress firewall rules, DROP
         PREROUTING -> vr-mark (after the firewall): connection marks for policy
         routing (subsystems/network/routing.py); static-NAT VMs through vr-mark-<public NIC>
  nat    PREROUTING, OUTPUT -> vr-dnat: static NAT DNAT, and per public IP
         -d ip -> vr-pf-<ip>: its port forwards
         POSTROUTING -> vr-snat: hairpin SNAT, static NAT SNAT, source NAT
  filter INPUT -> vr-INPUT (policy DROP): lo, established, icmp, SSH 3922 on the
         control NIC, DHCP/DNS from guest networks, metadata (80) and passwords
         (8080) from guest networks to the router's guest address
         FORWARD -> vr-FORWARD (policy DROP): established, DNAT'ed (already passed
         the ingress firewall), guest->public through vr-egress
         remote-access VPN: vr-vpn (last in vr-INPUT) takes IKE, NAT-T, ESP and
         L2TP-in-IPsec to its public IP (also opened in that IP's vr-fw-<ip>), DNS from
         ppp+; vr-FORWARD lets its clients (ppp+) reach the guests and, through
         vr-egress, the outside
A VPC router (vpcrouter: eth0 control, eth1 public, eth2+ tiers) has no per-public-IP
firewall; its FORWARD and its tiers' ACL chains come from subsystems/vpc/rules.py.

A shared network's VR (type dhcpsrvr: eth0 guest, eth1 control, no public NIC) is not the
guests' gateway: it gets vr-INPUT only (DNS, DHCP, metadata and passwords from the guest
network and each IP alias's subnet, to its own addresses), FORWARD policy DROP with no
chain, and no mangle or nat rules at all.
"""

from __future__ import annotations

from vragent.model import RouterState
from vragent.subsystems.dhcp import rules as dhcp_rules
from vragent.subsystems.firewall import rules as firewall_rules
from vragent.subsystems.guestdata import rules as guestdata_rules
from vragent.subsystems.lb import rules as lb_rules
from vragent.subsystems.network import rules as network_rules
from vragent.subsystems.vpc import rules as vpc_rules
from vragent.subsystems.vpn import rules as vpn_rules
from vragent.subsystems.vpn import site2site
from vragent.subsystems.vrrp import rules as vrrp_rules
from vragent.tables import TABLES, TableSpec


def render(state: RouterState) -> dict[str, TableSpec]:
    """The whole IPv4 ruleset: which subsystem fills which chain, in this order (the order of
    the rules in each chain, so the order of these calls never changes by accident)."""
    tables = {name: TableSpec(name) for name in TABLES}
    filter_table, mangle, nat = tables["filter"], tables["mangle"], tables["nat"]
    if not state.is_dhcp_server:
        if state.is_vpc:  # per public NIC, on the VPC's CIDR (vpc_netusage.sh reads them)
            vpc_rules.usage_counters(state, filter_table)
        else:
            firewall_rules.usage_counters(state, filter_table)
    network_rules.input_base(state, filter_table)
    dhcp_rules.input(state, filter_table)
    guestdata_rules.input(state, filter_table)
    vrrp_rules.input(state, filter_table)
    if state.is_dhcp_server:
        filter_table.policies["FORWARD"] = "DROP"  # not on the guests' data path
        return tables
    lb_rules.input(state, filter_table)
    vpn_rules.input(state, filter_table)
    site2site.input_rules(state, filter_table)
    site2site.forward_rules(state, filter_table)  # its jump must come before vr-FORWARD's
    if state.is_vpc:  # tiers guarded by their network ACLs instead of per-public-IP firewalls
        filter_table.policies["FORWARD"] = "DROP"
        filter_table.jump("FORWARD", "-j vr-FORWARD")
        vpc_rules.forward(state, filter_table)
    else:
        firewall_rules.forward_head(state, filter_table)
        vpn_rules.forward(state, filter_table)
        firewall_rules.egress(state, filter_table)
        firewall_rules.ingress(state, mangle)
    network_rules.marks(state, mangle)
    if state.is_vpc:
        vpc_rules.outbound(state, mangle)
    site2site.nat_bypass(state, nat)  # its jump must come before vr-snat's
    firewall_rules.nat(state, nat, vpc_rules.source_nat_address if state.is_vpc else None)
    if state.private_gateways:  # a VPC's
        vpc_rules.private_gateway_snat(state, nat)
    return tables


def render_restore(tables: dict[str, TableSpec], keys=TABLES) -> str:
    """The whole ruleset as one plain iptables-restore input (benchmark floor, debugging);
    with keys=IP6_TABLES, the IPv6 tables as ip6tables-restore input."""
    out = []
    for key in keys:
        spec = tables[key]
        out.append(f"*{spec.name}")
        out += [f":{chain} {policy} [0:0]" for chain, policy in sorted(spec.policies.items())]
        out += [f":{chain} - [0:0]" for chain in spec.chains]
        for rules in spec.jumps.values():
            out += rules
        for rules in spec.chains.values():
            out += rules
        out.append("COMMIT")
    return "\n".join(out) + "\n"
