"""The router's IPv6 filter table, rendered exactly as `ip6tables-save` prints it (pure).

Only for a dual-stack router (cmdline `eth0ip6`); an IPv4-only router gets no IPv6 table
from vragent, so whatever closed it at boot (packaging/lib/fail-closed: FORWARD DROP)
stays. IPv6 is routed, never NAT'ed: the guest /64 is reachable from upstream, and what
may reach it is the ipv6firewallrules' business. The same ownership rules as IPv4
(pipeline/netfilter.py): `vr-*` chains refilled wholesale, jumps only in built-in chains.

  filter INPUT -> vr-INPUT (policy DROP): lo, established, the ICMPv6 a link and a path
         need (errors, echo, router and neighbour discovery, MLD), and from the guest
         network DNS (53) and DHCPv6 (547). The incumbent dropped RS, DHCPv6, DNS and MLD
         from guests, so they waited up to 15 s for an unsolicited RA; not here.
         FORWARD -> vr-FORWARD (policy DROP): established, ICMPv6 errors, then
         guest /64 -> public through vr-egress (egress rules and the default policy) and
         public -> guest /64 through vr-ingress (ingress rules, otherwise DROP).
"""

from __future__ import annotations

from vragent.model import GUEST_DEVICE, PUBLIC_DEVICE, AclRule, Direction, FirewallRule, Protocol, RouterState
from vragent.tables import ESTABLISHED, TableSpec, net
from vragent.subsystems.vpc.rules import _protocol_names, inbound_chain, outbound_chain

# ICMPv6 errors (RFC 4443): destination unreachable, packet too big, time exceeded,
# parameter problem. Path MTU discovery depends on "packet too big" getting through.
ICMPV6_ERRORS = (1, 2, 3, 4)
# To the router itself: echo, MLD (query, report, done, v2 report), router solicitation and
# advertisement, neighbour solicitation and advertisement (RFC 4861, 3810).
ICMPV6_INPUT = (*ICMPV6_ERRORS, 128, 129, 130, 131, 132, 133, 134, 135, 136, 143)
DNS_PORT, DHCPV6_SERVER_PORT = 53, 547


def match_protocol6(protocol: Protocol, ports=None, icmp_type=None, icmp_code=None) -> str:
    """The protocol part of a rule in ip6tables-save's words (`icmp` is ICMPv6 here)."""
    if protocol is Protocol.ALL:
        return ""
    if protocol is Protocol.ICMP:
        text = "-p ipv6-icmp"
        if icmp_type is not None:
            text += f" -m icmp6 --icmpv6-type {icmp_type}" + (f"/{icmp_code}" if icmp_code is not None else "")
        return text
    text = f"-p {protocol.value}"
    if ports is not None:
        text += f" -m {protocol.value} --dport {ports.match()}"
    return text


def _icmpv6(icmp_type: int) -> str:
    return match_protocol6(Protocol.ICMP, icmp_type=icmp_type)


def render(state: RouterState) -> dict[str, TableSpec]:
    """{"filter6": the table} for a dual-stack router, else nothing."""
    if state.is_vpc:  # each dual-stack tier, guarded by its networkacl
        return render_vpc(state)
    ipv6 = state.ipv6
    if ipv6 is None or state.router_type != "router":
        return {}
    table = TableSpec("filter", family=6)
    guest = net(ipv6.guest_network)

    table.policies["INPUT"] = "DROP"
    table.jump("INPUT", "-j vr-INPUT")
    chain = "vr-INPUT"
    table.add(chain, "-i lo -j ACCEPT")
    table.add(chain, f"{ESTABLISHED} -j ACCEPT")
    for icmp_type in ICMPV6_INPUT:
        table.add(chain, f"{_icmpv6(icmp_type)} -j ACCEPT")
    # SSH 3922 stays IPv4-only: the control NIC has no IPv6 on a CloudStack router.
    # DHCPv6 requests come from link-local addresses, so only the NIC can be matched.
    table.add(chain, f"-i {GUEST_DEVICE} -p udp -m udp --dport {DHCPV6_SERVER_PORT} -j ACCEPT")
    for proto in ("udp", "tcp"):
        table.add(chain, f"-s {guest} -i {GUEST_DEVICE} -p {proto} -m {proto} --dport {DNS_PORT} -j ACCEPT")

    table.policies["FORWARD"] = "DROP"
    table.jump("FORWARD", "-j vr-FORWARD")
    chain = "vr-FORWARD"
    table.add(chain, f"{ESTABLISHED} -j ACCEPT")
    for icmp_type in ICMPV6_ERRORS:
        table.add(chain, f"{_icmpv6(icmp_type)} -j ACCEPT")
    # -s/-d the guest /64: a guest cannot send from, nor upstream reach, anything else.
    table.add(chain, f"-s {guest} -i {GUEST_DEVICE} -o {PUBLIC_DEVICE} -j vr-egress")
    table.add(chain, f"-d {guest} -i {PUBLIC_DEVICE} -o {GUEST_DEVICE} -j vr-ingress")

    allow_by_default = state.ipv6_egress_default_allow
    egress, ingress = "vr-egress", "vr-ingress"
    table.chain(egress)
    table.chain(ingress)
    for rule in state.ipv6_firewall_rules:
        if rule.direction is Direction.EGRESS:
            for spec in _rule_specs(rule):
                table.add(egress, f"{spec} -j {'DROP' if allow_by_default else 'ACCEPT'}")
        else:
            for spec in _rule_specs(rule):
                table.add(ingress, f"{spec} -j ACCEPT")
    table.add(egress, f"-j {'ACCEPT' if allow_by_default else 'DROP'}")
    table.add(ingress, "-j DROP")
    return {table.key: table}


def _rule_specs(rule: FirewallRule) -> list[str]:
    sources = [f"-s {net(c)}" if c.prefixlen else "" for c in rule.source_cidrs] or [""]
    destinations = [f"-d {net(c)}" if c.prefixlen else "" for c in rule.dest_cidrs] or [""]
    proto = match_protocol6(rule.protocol, rule.ports, rule.icmp_type, rule.icmp_code)
    return [" ".join(p for p in (s, d, proto) if p) for s in sources for d in destinations]


# -- IPv6 going away ----------------------------------------------------------------------------

def dual_stack(state: RouterState) -> bool:
    """render(state) has a table: a dual-stack isolated router, or a VPC with a dual-stack tier."""
    return (state.ipv6 is not None and state.router_type == "router") or bool(state.vpc_ipv6_tiers())


def withdrawn(old: RouterState, new: RouterState) -> bool:
    """The router had an IPv6 side and the new state has none."""
    return dual_stack(old) and not dual_stack(new)


def closed() -> TableSpec:
    """The IPv6 filter table of a router whose IPv6 went away: none of vragent's chains or
    jumps, INPUT and FORWARD closed (as the boot unit leaves an IPv4-only router's FORWARD)."""
    table = TableSpec("filter", family=6)
    table.policies.update({"INPUT": "DROP", "FORWARD": "DROP"})
    return table


def withdraw(desired):
    """`desired` (a plan.Desired) with the IPv6 side removed: the chains (closed()) and the
    IPv6 default route; addresses and radvd already follow the state (render/addresses.py,
    render/radvd.py)."""
    from dataclasses import replace

    table = closed()
    return replace(desired, tables={**desired.tables, table.key: table},
                   links=replace(desired.links, withdraw_route6=True))


# -- a dual-stack VPC -----------------------------------------------------------------------------
# A dual-stack VPC router's IPv6 filter table (pure), rendered as `ip6tables-save` prints it.
#
# Each dual-stack tier's /64 is routed, never NAT'ed. Its `networkacl` push guards it for IPv6
# too, with the items' IPv6 CIDRs (model.AclRule.cidrs6), as the incumbent's nftables
# `ip6_acl` table does from the same push:
#
#   filter INPUT -> vr-INPUT (policy DROP): lo, established, the ICMPv6 a link needs
#          (render/netfilter6.py), and from each tier DHCPv6 and DNS on its NIC.
#          FORWARD -> vr-FORWARD (policy DROP): established, ICMPv6 errors, then
#          `-s <tier6> -i ethN` -> ACL_OUTBOUND_ethN: the egress rules (`-d <cidr>`; allowed
#          RETURN to go on, denied DROP; no final rule: egress is allowed unless a rule drops
#          it, as the tier's IPv4 egress), `-d <tier6> -o ethN` -> ACL_INBOUND_ethN: the ingress
#          rules (`-s <cidr>`, ACCEPT or DROP, first match), then DROP; last, a tier's traffic
#          (past its egress ACL) out of the public NIC.
#
# So traffic between two tiers passes the source tier's egress ACL, then the destination
# tier's ingress ACL, as with IPv4. Unlike the incumbent, whose IPv6 egress chain drops what
# no rule matched and whose tier without an ACL push forwards IPv6 unfiltered (no
# `nic_ip6_cidr`, so no chain, and the forward hook accepts), a tier behaves the same for both
# address families here: ingress closed unless allowed, egress open unless denied.

def protocol_match6(rule: AclRule) -> str:
    if rule.protocol.isdigit():
        number = int(rule.protocol)
        return f"-p {_protocol_names().get(number, str(number))}" if number else ""
    return match_protocol6(Protocol(rule.protocol), rule.ports, rule.icmp_type, rule.icmp_code)


def rule_lines6(rule: AclRule, address_option: str, allowed: str, denied: str) -> list[str]:
    proto = protocol_match6(rule)
    target = f"-j {allowed if rule.allowed else denied}"
    return [" ".join(p for p in (f"{address_option} {c}" if c.prefixlen else "", proto, target) if p)
            for c in rule.cidrs6]


def render_vpc(state: RouterState) -> dict[str, TableSpec]:
    tiers = state.vpc_ipv6_tiers()
    if not tiers:
        return {}
    public = state.layout.public
    table = TableSpec("filter", family=6)
    table.policies["INPUT"] = "DROP"
    table.jump("INPUT", "-j vr-INPUT")
    chain = "vr-INPUT"
    table.add(chain, "-i lo -j ACCEPT")
    table.add(chain, f"{ESTABLISHED} -j ACCEPT")
    for icmp_type in ICMPV6_INPUT:
        table.add(chain, f"{_icmpv6(icmp_type)} -j ACCEPT")
    for tier in tiers:
        table.add(chain, f"-i {tier.device} -p udp -m udp --dport {DHCPV6_SERVER_PORT} -j ACCEPT")
        for proto in ("udp", "tcp"):
            table.add(chain, f"-s {tier.ipv6.network} -i {tier.device} -p {proto} -m {proto} "
                             f"--dport {DNS_PORT} -j ACCEPT")

    table.policies["FORWARD"] = "DROP"
    table.jump("FORWARD", "-j vr-FORWARD")
    chain = "vr-FORWARD"
    table.add(chain, f"{ESTABLISHED} -j ACCEPT")
    for icmp_type in ICMPV6_ERRORS:
        table.add(chain, f"{_icmpv6(icmp_type)} -j ACCEPT")
    for tier in tiers:
        table.add(chain, f"-s {tier.ipv6.network} -i {tier.device} -j {outbound_chain(tier.device)}")
    for tier in tiers:
        table.add(chain, f"-d {tier.ipv6.network} -o {tier.device} -j {inbound_chain(tier.device)}")
    for tier in tiers:
        table.add(chain, f"-s {tier.ipv6.network} -i {tier.device} -o {public} -j ACCEPT")
    for tier in tiers:
        acl = state.network_acl(tier.device)
        outbound, inbound = outbound_chain(tier.device), inbound_chain(tier.device)
        table.chain(outbound)
        for rule in acl.egress if acl else ():
            for line in rule_lines6(rule, "-d", "RETURN", "DROP"):
                table.add(outbound, line)
        for rule in acl.ingress if acl else ():
            for line in rule_lines6(rule, "-s", "ACCEPT", "DROP"):
                table.add(inbound, line)
        table.add(inbound, "-j DROP")
    return {table.key: table}
