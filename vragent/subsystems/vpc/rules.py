"""A VPC router's forwarding: tiers guarded by their network ACLs (pure).

Rendered into pipeline/netfilter.py's tables, exactly as iptables-save prints them. The
chain names are the incumbent's (operators grep `ACL_INBOUND_ethN`); vragent owns them
(netfilter.is_owned) and refills them as a whole with each apply, so a push that changes
one tier's ACL replaces that chain and nothing else, atomically with the rest.

  filter FORWARD -> vr-FORWARD (policy DROP):
         established; traffic into tier ethN (`-d <tier> -o ethN`) through
         ACL_INBOUND_ethN: the tier's ingress rules matched on the source, first match
         in the pushed order (the management server sorts them by `number`), then DROP;
         new connections from a tier out of a public NIC accepted (its egress ACL ran in
         mangle already)
  mangle PREROUTING -> vr-acl (last of our jumps there): a tier's new connections
         (`-s <tier> -i ethN`, not to its gateway) through ACL_OUTBOUND_ethN: the egress
         rules matched on the destination. No final rule: what no rule drops is allowed
         (CloudStack's egress default in NAT mode; a "default deny" ACL list sends an
         explicit all/DROP rule). ACCEPT in mangle only ends mangle's PREROUTING, which
         is why vr-acl is jumped after vr-mark.

  nat POSTROUTING -> vr-snat: the first public NIC (eth1) SNATs to its source-NAT IP;
         every further public NIC (a VPC's extra public VLAN, eth4...) to the VPC's
         source-NAT IP, the cmdline's `source_nat_ip` (cloudstack-vr-wave2.md §1.7): its
         own IPs are for port forwarding, static NAT and load balancing only
  filter INPUT, FORWARD, OUTPUT -> NETWORK_STATS_ethN per public NIC: the usage
         counters vpc_netusage.sh reads (sent, received, then the same for TCP from and
         to outside the VPC: the order is the billing format, §3.1)
A private gateway (model.PrivateGateway) on ethN is guarded the same way by its own ACL
(`networkacl` with private_gateway_acl), in the incumbent's directions, its network and
the networks of the static routes through it being "inside":
  filter: traffic out of ethN to its network or to a static route's network through
         ACL_INBOUND_ethN: the ingress rules matched on the (VPC) source, then DROP;
  mangle: new connections in on ethN from its network or a static route's network (not
         to the router's own address) through ACL_OUTBOUND_ethN: the egress rules matched
         on the destination, default allow; where they go (a tier), that tier's ingress
         ACL decides next.
Private gateway traffic is routed, never NAT'ed, unless the private gateway has
`source_nat` (then SNAT to its IP out of ethN); it is never forwarded to or from a
public NIC. A static route whose next hop is in a tier is that tier's: its traffic
passes the tier's ACLs.

Traffic between tiers is routed by the router: it passes the source tier's egress ACL
and then the destination tier's ingress ACL. Port forwarding and static NAT to a VM in a
tier are subject to that tier's ingress ACL too (as on CloudStack's VPC: there are no
per-public-IP firewall rules). Unlike the incumbent, a rule with several CIDRs becomes one
rule per CIDR in the listed order (no reordering), TCP/UDP without ports matches every
port (not port 0), and a removed tier's chains are deleted.
"""

from __future__ import annotations

import functools
from ipaddress import IPv4Network

from ipaddress import IPv4Address

from vragent.model import AclRule, Protocol, RouterState

ACL_INBOUND = "ACL_INBOUND_"
ACL_OUTBOUND = "ACL_OUTBOUND_"
ACL_CHAIN_PREFIXES = (ACL_INBOUND, ACL_OUTBOUND)  # netfilter.is_owned: the same two
OUTBOUND_JUMP_CHAIN = "vr-acl"
# VRRP and conntrackd's sync group, accepted at the top of every ACL chain as the incumbent
# does (fw_vpcrouter), so no ACL can cut a redundant pair's heartbeat.
MULTICAST_ACCEPTS = ("224.0.0.18/32", "225.0.0.50/32")
PROTOCOLS_FILE = "/etc/protocols"  # the machine's own: iptables-save names protocols from it


def inbound_chain(device: str) -> str:
    return f"{ACL_INBOUND}{device}"


def outbound_chain(device: str) -> str:
    return f"{ACL_OUTBOUND}{device}"


@functools.lru_cache(maxsize=1)
def _protocol_names() -> dict[int, str]:
    """Number -> name as iptables-save prints `-p` (netbase's /etc/protocols, as on a VR)."""
    names: dict[int, str] = {}
    try:
        with open(PROTOCOLS_FILE, encoding="ascii", errors="replace") as handle:
            for line in handle:
                words = line.split("#", 1)[0].split()
                if len(words) >= 2 and words[1].isdigit():
                    names.setdefault(int(words[1]), words[0])
    except OSError:
        pass
    return names


def protocol_match(rule: AclRule) -> str:
    """The protocol part of an ACL rule in iptables-save's words ('' for every protocol)."""
    from vragent.tables import match_protocol

    if rule.protocol.isdigit():
        number = int(rule.protocol)
        if number == 0:  # iptables treats protocol 0 as every protocol and prints nothing
            return ""
        return f"-p {_protocol_names().get(number, str(number))}"
    return match_protocol(Protocol(rule.protocol), rule.ports, rule.icmp_type, rule.icmp_code)


def rule_lines(rule: AclRule, address_option: str) -> list[str]:
    """One spec per CIDR, in the listed order; 0.0.0.0/0 matches any address (no option)."""
    proto = protocol_match(rule)
    target = "-j ACCEPT" if rule.allowed else "-j DROP"
    lines = []
    for cidr in rule.cidrs:
        address = f"{address_option} {cidr}" if cidr.prefixlen else ""
        lines.append(" ".join(part for part in (address, proto, target) if part))
    return lines


def forward(state: RouterState, table) -> None:
    """filter: vr-FORWARD and the ACL_INBOUND chains of every tier."""
    from vragent.tables import ESTABLISHED, net

    chain = "vr-FORWARD"
    table.add(chain, f"{ESTABLISHED} -j ACCEPT")
    tiers = state.all_guest_networks()
    for tier in tiers:
        table.add(chain, f"-d {net(tier.network)} -o {tier.device} -j {inbound_chain(tier.device)}")
    for device, network in _private_gateway_networks(state) + _routes_by_device(state):
        table.add(chain, f"-d {net(network)} -o {device} -j {inbound_chain(device)}")
    for tier in tiers:
        for device in state.public_devices():
            table.add(chain, f"-s {net(tier.network)} -i {tier.device} -o {device} -j ACCEPT")
    guarded = [(t.device, t.gateway) for t in tiers] + [(p.device, p.ip) for p in state.private_gateways]
    for device, _ in guarded:
        inbound = inbound_chain(device)
        for group in MULTICAST_ACCEPTS:
            table.add(inbound, f"-d {group} -j ACCEPT")
        acl = state.network_acl(device)
        for rule in acl.ingress if acl else ():
            for line in rule_lines(rule, "-s"):
                table.add(inbound, line)
        table.add(inbound, "-j DROP")


def outbound(state: RouterState, table) -> None:
    """mangle: vr-acl and the ACL_OUTBOUND chains of every tier."""
    from vragent.tables import host, net

    tiers = state.all_guest_networks()
    if not tiers and not state.private_gateways:
        return
    table.jump("PREROUTING", f"-j {OUTBOUND_JUMP_CHAIN}")
    own = {t.device: t.gateway for t in tiers} | {p.device: p.ip for p in state.private_gateways}
    inside = ([(t.device, t.network) for t in tiers] + _private_gateway_networks(state)
              + _routes_by_device(state))
    for device, network in inside:
        table.add(OUTBOUND_JUMP_CHAIN, f"-s {net(network)} ! -d {host(own[device])} -i {device} "
                                       f"-m conntrack --ctstate NEW -j {outbound_chain(device)}")
    for device in own:
        outbound = outbound_chain(device)
        for group in MULTICAST_ACCEPTS:
            table.add(outbound, f"-d {group} -j ACCEPT")
        acl = state.network_acl(device)
        for rule in acl.egress if acl else ():
            for line in rule_lines(rule, "-d"):
                table.add(outbound, line)


def source_nat_address(state: RouterState, device: str) -> IPv4Address | None:
    """The address VPC traffic leaving public NIC `device` is SNAT'ed to: the first public
    NIC's own source-NAT IP; on any other public NIC the cmdline's `source_nat_ip` (the
    VPC has one source-NAT IP), that NIC's first IP only while the cmdline has none."""
    own = state.source_nat_ip(device)
    if device == state.layout.public:
        return own
    text = state.config.get("source_nat_ip", "")
    try:
        return IPv4Address(text)
    except ValueError:
        return own


def usage_counters(state: RouterState, table) -> None:
    """filter NETWORK_STATS_ethN per public NIC: rules without a target, only counted, in
    the order vpc_netusage.sh's reader pairs them (sent, received, sent, received). Sent is
    what leaves ethN from inside the VPC (SNAT happens later, in POSTROUTING), received what
    comes in on ethN for it (DNAT already happened, in PREROUTING); then TCP the router
    itself exchanges there (INPUT and OUTPUT, outside the VPC's CIDR)."""
    from vragent.tables import STATS_CHAIN, net

    cidr = state.vpc_cidr
    if cidr is None:
        return
    for device in state.public_devices():
        chain = f"{STATS_CHAIN}_{device}"
        table.add(chain, f"-s {net(cidr)} -o {device}")
        table.add(chain, f"-d {net(cidr)} -i {device}")
        table.add(chain, f"! -s {net(cidr)} -o {device} -p tcp")
        table.add(chain, f"! -d {net(cidr)} -i {device} -p tcp")
        for builtin in ("INPUT", "FORWARD", "OUTPUT"):
            table.jump(builtin, f"-j {chain}")


def _private_gateway_networks(state: RouterState) -> list[tuple[str, IPv4Network]]:
    return [(p.device, p.network) for p in state.private_gateways]


def _routes_by_device(state: RouterState) -> list[tuple[str, IPv4Network]]:
    """(NIC, network) of each static route the router has (subsystems/network/static_routes.py)."""
    from vragent.subsystems.network import static_routes

    return [(r.device, r.destination) for r in sorted(static_routes.render(state))]


def static_route_networks(state: RouterState) -> list[IPv4Network]:
    """The networks behind static routes: like the private gateways' networks, never sent to
    a public gateway (policy routing must exempt them from a static-NAT VM's public mark)."""
    return [network for _, network in _routes_by_device(state)]


def private_gateway_snat(state: RouterState, table) -> None:
    """nat vr-snat: out of a private gateway with source_nat, the VPC's traffic takes its IP."""
    for pgw in state.private_gateways:
        if pgw.source_nat:
            table.add("vr-snat", f"-o {pgw.device} -j SNAT --to-source {pgw.ip}")
