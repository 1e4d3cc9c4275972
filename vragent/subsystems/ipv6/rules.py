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

from vragent.model import GUEST_DEVICE, PUBLIC_DEVICE, Direction, FirewallRule, Protocol, RouterState
from vragent.tables import ESTABLISHED, TableSpec, net

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
