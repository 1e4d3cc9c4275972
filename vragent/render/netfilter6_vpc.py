"""A dual-stack VPC router's IPv6 filter table (pure), rendered as `ip6tables-save` prints it.

Each dual-stack tier's /64 is routed, never NAT'ed. Its `networkacl` push guards it for IPv6
too, with the items' IPv6 CIDRs (model.AclRule.cidrs6), as the incumbent's nftables
`ip6_acl` table does from the same push:

  filter INPUT -> vr-INPUT (policy DROP): lo, established, the ICMPv6 a link needs
         (render/netfilter6.py), and from each tier DHCPv6 and DNS on its NIC.
         FORWARD -> vr-FORWARD (policy DROP): established, ICMPv6 errors, then
         `-s <tier6> -i ethN` -> ACL_OUTBOUND_ethN: the egress rules (`-d <cidr>`; allowed
         RETURN to go on, denied DROP; no final rule: egress is allowed unless a rule drops
         it, as the tier's IPv4 egress), `-d <tier6> -o ethN` -> ACL_INBOUND_ethN: the ingress
         rules (`-s <cidr>`, ACCEPT or DROP, first match), then DROP; last, a tier's traffic
         (past its egress ACL) out of the public NIC.

So traffic between two tiers passes the source tier's egress ACL, then the destination
tier's ingress ACL, as with IPv4. Unlike the incumbent, whose IPv6 egress chain drops what
no rule matched and whose tier without an ACL push forwards IPv6 unfiltered (no
`nic_ip6_cidr`, so no chain, and the forward hook accepts), a tier behaves the same for both
address families here: ingress closed unless allowed, egress open unless denied.
"""

from __future__ import annotations

from vragent.model import AclRule, Protocol, RouterState
from vragent.render.netfilter import ESTABLISHED, TableSpec
from vragent.render.netfilter_vpc import _protocol_names, inbound_chain, outbound_chain


def protocol_match6(rule: AclRule) -> str:
    from vragent.render.netfilter6 import match_protocol6

    if rule.protocol.isdigit():
        number = int(rule.protocol)
        return f"-p {_protocol_names().get(number, str(number))}" if number else ""
    return match_protocol6(Protocol(rule.protocol), rule.ports, rule.icmp_type, rule.icmp_code)


def rule_lines6(rule: AclRule, address_option: str, allowed: str, denied: str) -> list[str]:
    proto = protocol_match6(rule)
    target = f"-j {allowed if rule.allowed else denied}"
    return [" ".join(p for p in (f"{address_option} {c}" if c.prefixlen else "", proto, target) if p)
            for c in rule.cidrs6]


def render(state: RouterState) -> dict[str, TableSpec]:
    from vragent.render.netfilter6 import DHCPV6_SERVER_PORT, DNS_PORT, ICMPV6_ERRORS, ICMPV6_INPUT, _icmpv6

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
