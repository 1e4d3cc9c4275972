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
         routing (render/routing.py); static-NAT VMs through vr-mark-<public NIC>
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
firewall; its FORWARD and its tiers' ACL chains come from render/netfilter_vpc.py.

A shared network's VR (type dhcpsrvr: eth0 guest, eth1 control, no public NIC) is not the
guests' gateway: it gets vr-INPUT only (DNS, DHCP, metadata and passwords from the guest
network and each IP alias's subnet, to its own addresses), FORWARD policy DROP with no
chain, and no mangle or nat rules at all.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from vragent.model import GUEST_DEVICE, PUBLIC_DEVICE, Direction, FirewallRule, PortForward, Protocol, RouterState, SSH_PORT
from vragent import routed
from vragent.render import bgp, site2site

CHAIN_PREFIX = "vr-"
# The incumbent's usage counters keep their names: the management server's netusage.sh
# reads `iptables -L NETWORK_STATS` on the router and bills from the byte column.
STATS_CHAIN = "NETWORK_STATS"


# A VPC router's tier ACL chains keep the incumbent's names too (render/netfilter_vpc.py).
ACL_CHAIN_PREFIXES = ("ACL_INBOUND_", "ACL_OUTBOUND_")


def is_owned(chain: str) -> bool:
    """Chains vragent refills as a whole; every other chain is left alone."""
    return (chain.startswith(CHAIN_PREFIX) or chain == STATS_CHAIN or chain.startswith(STATS_CHAIN + "_")
            or chain.startswith(ACL_CHAIN_PREFIXES))
TABLES = ("raw", "mangle", "nat", "filter")
BUILTIN_CHAINS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}
ESTABLISHED = "-m conntrack --ctstate RELATED,ESTABLISHED"
# ip6tables tables vragent manages, by key (render/netfilter6.py); IPv6 is never NAT'ed.
IP6_TABLES = ("filter6",)


def table_key(name: str, family: int) -> str:
    return name if family == 4 else f"{name}6"


def kernel_table(key: str) -> tuple[str, int]:
    """`filter6` -> ("filter", 6); `nat` -> ("nat", 4)."""
    return (key[:-1], 6) if key in IP6_TABLES else (key, 4)


@dataclass
class TableSpec:
    """What vragent wants in one table: policies, jumps at the top of built-ins, owned chains."""

    name: str
    policies: dict[str, str] = field(default_factory=dict)
    jumps: dict[str, list[str]] = field(default_factory=dict)  # built-in chain -> ["-A INPUT -j vr-INPUT"]
    chains: dict[str, list[str]] = field(default_factory=dict)  # owned chain -> rule lines
    family: int = 4  # 6: an ip6tables table (render/netfilter6.py)

    @property
    def key(self) -> str:
        """Its name among the router's tables: the kernel's name, `filter6` for IPv6."""
        return table_key(self.name, self.family)

    def chain(self, name: str) -> list[str]:
        return self.chains.setdefault(name, [])

    def add(self, chain: str, spec: str) -> None:
        # Collapse the gaps left by empty match parts: iptables-save prints single spaces.
        self.chain(chain).append(" ".join(f"-A {chain} {spec}".split()))

    def jump(self, builtin: str, spec: str) -> None:
        self.jumps.setdefault(builtin, []).append(f"-A {builtin} {spec}")

    def rule_count(self) -> int:
        return sum(len(r) for r in self.chains.values()) + sum(len(r) for r in self.jumps.values())


@functools.lru_cache(maxsize=65536)
def text(address: IPv4Address) -> str:
    """str() of an address, remembered: the same few thousand addresses are printed over and over."""
    return str(address)


def host(address: IPv4Address) -> str:
    return f"{text(address)}/32"


def net(network: IPv4Network) -> str:
    return str(network)


def match_protocol(protocol: Protocol, ports=None, icmp_type=None, icmp_code=None, *,
                   source_port: bool = False) -> str:
    """The protocol part of a rule in iptables-save's words."""
    if protocol is Protocol.ALL:
        return ""
    text = f"-p {protocol.value}"
    if protocol.has_ports and ports is not None:
        text += f" -m {protocol.value} --{'s' if source_port else 'd'}port {ports.match()}"
    elif protocol is Protocol.ICMP and icmp_type is not None:
        text += f" -m icmp --icmp-type {icmp_type}" + (f"/{icmp_code}" if icmp_code is not None else "")
    return text


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def render(state: RouterState) -> dict[str, TableSpec]:
    tables = {name: TableSpec(name) for name in TABLES}
    if state.is_dhcp_server:
        _filter_input(state, tables["filter"])
        tables["filter"].policies["FORWARD"] = "DROP"  # not on the guests' data path
        return tables
    _usage_counters(state, tables["filter"])
    _filter_input(state, tables["filter"])
    _load_balancer_input(state, tables["filter"])
    _vpn_input(state, tables["filter"])
    site2site.input_rules(state, tables["filter"])
    bgp.input_rules(state, tables["filter"])
    site2site.forward_rules(state, tables["filter"])  # its jump must come before vr-FORWARD's
    _filter_forward(state, tables["filter"])
    if not state.is_vpc and not routed.is_routed(state):  # routed: no public-IP firewall (no NAT)
        _ingress_firewall(state, tables["mangle"])
    _policy_marks(state, tables["mangle"])
    if state.is_vpc:  # tiers guarded by their network ACLs instead of per-public-IP firewalls
        from vragent.render import netfilter_vpc

        netfilter_vpc.outbound(state, tables["mangle"])
    site2site.nat_bypass(state, tables["nat"])  # its jump must come before vr-snat's
    _nat(state, tables["nat"])
    return tables


def _usage_counters(state: RouterState, table: TableSpec) -> None:
    """Rules without a target, only counted: the order is the billing format (sent,
    received, router-sent TCP, router-received TCP), so it must never change."""
    if state.is_vpc:  # per public NIC, on the VPC's CIDR (vpc_netusage.sh reads them)
        from vragent.render import netfilter_vpc

        netfilter_vpc.usage_counters(state, table)
        return
    if state.router_type != "router" or not state.all_guest_networks() or not state.public_devices():
        return
    guest = state.all_guest_networks()[0].device

    def counters(chain: str, public: str) -> None:
        table.add(chain, f"-i {guest} -o {public}")
        table.add(chain, f"-i {public} -o {guest}")
        table.add(chain, f"! -i {guest} -o {public} -p tcp")
        table.add(chain, f"-i {public} ! -o {guest} -p tcp")

    counters(STATS_CHAIN, PUBLIC_DEVICE)  # the incumbent hard-codes eth2 here
    for builtin in ("INPUT", "FORWARD", "OUTPUT"):
        table.jump(builtin, f"-j {STATS_CHAIN}")
    for device in state.public_devices():
        counters(f"{STATS_CHAIN}_{device}", device)
        for builtin in ("INPUT", "FORWARD", "OUTPUT"):
            table.jump(builtin, f"-j {STATS_CHAIN}_{device}")


def _filter_input(state: RouterState, table: TableSpec) -> None:
    table.policies["INPUT"] = "DROP"
    table.jump("INPUT", "-j vr-INPUT")
    chain = "vr-INPUT"
    table.add(chain, "-i lo -j ACCEPT")
    table.add(chain, f"{ESTABLISHED} -j ACCEPT")
    table.add(chain, "-p icmp -j ACCEPT")
    # Management SSH only from the control NIC (the management server's link-local path).
    table.add(chain, f"-i {state.layout.control} -p tcp -m tcp --dport {SSH_PORT} -j ACCEPT")
    if state.is_dhcp_server and state.config.get("sshonguest") == "true":
        # A basic zone on VMware or Hyper-V: the management server reaches the VR over
        # the guest network (it says so with sshonguest=true).
        table.add(chain, f"-i {GUEST_DEVICE} -p tcp -m tcp --dport {SSH_PORT} -j ACCEPT")
    for guest in state.all_guest_networks():
        # DHCP requests come from 0.0.0.0, so only the NIC can be matched.
        table.add(chain, f"-i {guest.device} -p udp -m udp --dport 67 -j ACCEPT")
        for proto in ("udp", "tcp"):
            table.add(chain, f"-s {net(guest.network)} -i {guest.device} -p {proto} -m {proto} --dport 53 -j ACCEPT")
    for alias in state.ip_aliases:  # a shared network's further subnets, on the guest NIC
        for proto in ("udp", "tcp"):
            table.add(chain, f"-s {net(alias.network)} -i {GUEST_DEVICE} -p {proto} -m {proto} "
                             "--dport 53 -j ACCEPT")
    _data_server_input(state, table)
    _redundancy_input(state, table)


def _data_server_input(state: RouterState, table: TableSpec) -> None:
    """Guests reach the data server (metadata 80, passwords 8080) on the router's guest
    address (and the gateway VIP of a pair, and each IP alias), from that address's own
    subnet only; no TLS (443)."""
    from vragent.render import metadata

    if not metadata.enabled(state):
        return
    networks = {n.device: n.network for n in state.all_guest_networks()}
    subnets = [subnet.network for subnet in state.guest_subnets()]
    for device, address in metadata.listen_addresses(state):
        source = next((network for network in subnets if address in network), networks[device])
        for port in metadata.PORTS:
            table.add("vr-INPUT", f"-s {net(source)} -d {host(address)} -i {device} "
                                  f"-p tcp -m tcp --dport {port} -j ACCEPT")


def _redundancy_input(state: RouterState, table: TableSpec) -> None:
    """A redundant pair hears its peer on the VRRP NIC: VRRP advertisements and conntrackd's
    state sync (CloudStack #1064: without these both routers become master)."""
    from vragent import redundancy

    vrrp = redundancy.settings(state)
    if vrrp is None:
        return
    # iptables-save names protocol 112 after /etc/protocols (netbase), as on every VR.
    table.add("vr-INPUT", f"-d {host(redundancy.VRRP_GROUP)} -i {vrrp.interface} -p vrrp -j ACCEPT")
    table.add("vr-INPUT", f"-d {host(redundancy.SYNC_GROUP)} -i {vrrp.interface} -p udp -m udp "
                          f"--dport {redundancy.SYNC_PORT} -j ACCEPT")


def _load_balancer_input(state: RouterState, table: TableSpec) -> None:
    """INPUT accepts for exactly the IP:port pairs HAProxy listens on (vr-lb, last in
    vr-INPUT). Absent while no load balancer exists. Public IPs are still gated first by
    their ingress firewall (mangle vr-fw-<ip>), as for port forwarding."""
    accepts = state.load_balancing.accepts()
    if not accepts:
        return
    chain = "vr-lb"
    table.add("vr-INPUT", f"-j {chain}")
    rules: dict[str, None] = {}
    for accept in accepts:
        destination = f"-d {host(accept.ip)}" if accept.ip is not None else ""
        for source in accept.sources or (None,):
            origin = f"-s {net(source)}" if source is not None else ""
            rules[_join(origin, destination, f"-p tcp -m tcp --dport {accept.port}", "-j ACCEPT")] = None
    for rule in rules:
        table.add(chain, rule)


# udp 1701 (L2TP) counts only when it came out of an IPsec SA (iptables-extensions(8),
# policy): plain L2TP would carry CHAP over the internet unprotected.
_VPN_IKE_PORTS = (500, 4500)
_THROUGH_IPSEC = "-m policy --dir in --pol ipsec --proto esp"
VPN_CLIENT_DEVICES = "ppp+"


def _vpn_public_openings() -> list[str]:
    """What the remote-access VPN's public IP takes in: IKE, NAT-T, ESP, and L2TP out of ESP."""
    rules = [f"-p udp -m udp --dport {port}" for port in _VPN_IKE_PORTS]
    return rules + ["-p esp", f"-p udp {_THROUGH_IPSEC} -m udp --dport 1701"]


def _vpn_input(state: RouterState, table: TableSpec) -> None:
    """vr-vpn (last in vr-INPUT, absent without a VPN): IKE, NAT-T, ESP and L2TP-in-IPsec
    to the VPN's public IP on its NIC, and DNS from the clients' PPP links to the address
    pppd gives them as DNS server (dnsmasq answers there)."""
    from vragent.render import vpn as layout

    vpn = state.remote_access_vpn
    if not layout.enabled(state):  # isolated and VPC routers
        return

    chain = "vr-vpn"
    table.add("vr-INPUT", f"-j {chain}")
    for opening in _vpn_public_openings():
        table.add(chain, f"-d {host(vpn.public_ip)} -i {vpn.public_interface} {opening} -j ACCEPT")
    for proto in ("udp", "tcp"):
        table.add(chain, f"-d {layout.dns_server(state)}/32 -i {VPN_CLIENT_DEVICES} -p {proto} -m {proto} "
                         "--dport 53 -j ACCEPT")


def _vpn_forward(state: RouterState, table: TableSpec) -> None:
    """VPN clients (ppp+, sources in the client range) reach the guest networks, each other,
    and the outside through vr-egress like the guests (source NAT as theirs); guests may
    open connections to the clients, as the incumbent allows. (A VPC's: netfilter_vpc.py.)"""
    vpn = state.remote_access_vpn
    if vpn is None or state.router_type not in (None, "router"):
        return
    clients = f"-m iprange --src-range {vpn.ip_range}"
    chain, ppp = "vr-FORWARD", VPN_CLIENT_DEVICES
    for guest in state.all_guest_networks():
        table.add(chain, f"-i {ppp} -o {guest.device} {clients} -j ACCEPT")
        table.add(chain, f"-s {net(guest.network)} -i {guest.device} -o {ppp} -j ACCEPT")
    table.add(chain, f"-i {ppp} -o {ppp} {clients} -j ACCEPT")
    for device in state.public_devices():
        table.add(chain, f"-i {ppp} -o {device} {clients} -j vr-egress")


def _filter_forward(state: RouterState, table: TableSpec) -> None:
    table.policies["FORWARD"] = "DROP"
    table.jump("FORWARD", "-j vr-FORWARD")
    if state.is_vpc:
        from vragent.render import netfilter_vpc

        netfilter_vpc.forward(state, table)
        return
    chain = "vr-FORWARD"
    table.add(chain, f"{ESTABLISHED} -j ACCEPT")
    # Connections DNAT'ed by port forwarding or static NAT passed the ingress firewall in mangle
    # (a routed network has neither: its ingress is vr-ingress).
    if not routed.is_routed(state):
        table.add(chain, "-m conntrack --ctstate DNAT -j ACCEPT")
    public_devices = state.public_devices()
    for guest in state.all_guest_networks():
        for device in public_devices:
            table.add(chain, f"-i {guest.device} -o {device} -j vr-egress")
    routed.forward(state, table)  # a routed network: into the guests through vr-ingress
    _vpn_forward(state, table)
    egress = "vr-egress"
    table.chain(egress)
    allow_by_default = state.egress_default_allow
    action = "DROP" if allow_by_default else "ACCEPT"
    for rule in state.firewall_rules:
        if rule.direction is Direction.EGRESS:
            for spec in _rule_specs(rule):
                table.add(egress, f"{spec} -j {action}")
    table.add(egress, f"-j {'ACCEPT' if allow_by_default else 'DROP'}")


def _rule_specs(rule: FirewallRule) -> list[str]:
    sources = [f"-s {net(c)}" if c.prefixlen else "" for c in rule.source_cidrs] or [""]
    destinations = [f"-d {net(c)}" if c.prefixlen else "" for c in rule.dest_cidrs] or [""]
    proto = match_protocol(rule.protocol, rule.ports, rule.icmp_type, rule.icmp_code)
    return [_join(s, d, proto) for s in sources for d in destinations]


def _ingress_firewall(state: RouterState, table: TableSpec) -> None:
    table.jump("PREROUTING", "-j vr-PREROUTING")
    chain = "vr-PREROUTING"
    table.chain(chain)
    for guest in state.all_guest_networks():
        # Guests reaching a public IP (hairpin) are not ingress traffic.
        table.add(chain, f"-i {guest.device} -j RETURN")
    vpn = state.remote_access_vpn if state.router_type in (None, "router") else None
    ingress: dict[IPv4Address, list[FirewallRule]] = {}
    for rule in state.firewall_rules:
        if rule.direction is Direction.INGRESS:
            ingress.setdefault(rule.public_ip, []).append(rule)
    for pip in state.ordered_public_ips():
        fw = f"vr-fw-{pip.ip}"
        table.add(chain, f"-d {host(pip.ip)} -j {fw}")
        table.add(fw, f"{ESTABLISHED} -j RETURN")
        if vpn is not None and vpn.public_ip == pip.ip:
            # The remote-access VPN's own openings, whatever the ingress rules say (the
            # incumbent's VPN_<ip> chain did this for ESP; CloudStack opens 500/1701/4500
            # with firewall rules it creates, which may be revoked by hand).
            for opening in _vpn_public_openings():
                table.add(fw, f"{opening} -j RETURN")
        for rule in ingress.get(pip.ip, []):
            for spec in _rule_specs(rule):
                table.add(fw, f"{spec} -j RETURN")
        table.add(fw, "-j DROP")


def _policy_marks(state: RouterState, table: TableSpec) -> None:
    """Marks that route a connection's packets by its public NIC's table (render/routing.py).

    Jumped after vr-PREROUTING: the ingress firewall only RETURNs or DROPs, so the order
    changes no verdict, and a packet it drops is never marked. Both run before nat's DNAT
    and before the routing decision, which is all the marks need.
    - a new connection arriving on public NIC ethN: connmark 0x(100+N);
    - a packet from a guest in an established connection: the connmark restored into its
      mark, so the reply leaves by the NIC the connection came in on;
    - a static-NAT VM's new connection: marked for its public IP's NIC, connmark saved.
    """
    from vragent.render import routing

    devices = routing.render(state).devices
    if not devices:
        return
    table.jump("PREROUTING", "-j vr-mark")
    chain = "vr-mark"
    guests = state.all_guest_networks()
    for guest in guests:
        table.add(chain, f"-i {guest.device} {ESTABLISHED} -j CONNMARK --restore-mark "
                         "--nfmask 0xffffffff --ctmask 0xffffffff")
    public = {p.ip: p.device for p in state.ordered_public_ips()}
    for nat in state.static_nats:
        device = public.get(nat.public_ip)
        if device not in devices:
            continue
        inside = next((g.device for g in guests if nat.internal_ip in g.network), None)
        table.add(chain, _join(f"-s {host(nat.internal_ip)}", f"-i {inside}" if inside else "",
                               f"-m conntrack --ctstate NEW -j vr-mark-{device}"))
        static = f"vr-mark-{device}"
        if static not in table.chains:
            table.add(static, f"-j MARK --set-xmark {routing.mark_of(device):#x}/0xffffffff")
            table.add(static, "-j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff")
    for device in devices:
        table.add(chain, f"-i {device} -m conntrack --ctstate NEW -j CONNMARK "
                         f"--set-xmark {routing.mark_of(device):#x}/0xffffffff")


def _dnat_target(rule: PortForward) -> str:
    target = f"{text(rule.internal_ip)}:{rule.internal_ports.first}"
    if rule.internal_ports.size > 1:
        target += f"-{rule.internal_ports.last}"
        if rule.internal_ports.first != rule.public_ports.first:
            # Shifted ranges map port to port (1020:1030 -> 20-30/1020), not to any port of the range.
            target += f"/{rule.public_ports.first}"
    return target


def _nat(state: RouterState, table: TableSpec) -> None:
    table.jump("PREROUTING", "-j vr-dnat")
    table.jump("OUTPUT", "-j vr-dnat")  # the router itself reaches forwarded ports too
    table.jump("POSTROUTING", "-j vr-snat")
    dnat, snat = "vr-dnat", "vr-snat"
    table.chain(dnat)
    table.chain(snat)
    # One chain per public IP: a packet walks its own IP's forwards only, and a change to one
    # IP's forwards is edited and read back in a chain of hundreds, not of ten thousand.
    forwards: dict[IPv4Address, list[PortForward]] = {}
    for rule in state.port_forwards:
        forwards.setdefault(rule.public_ip, []).append(rule)
    for public_ip, rules in forwards.items():
        chain = f"vr-pf-{public_ip}"
        table.add(dnat, f"-d {host(public_ip)} -j {chain}")
        for rule in rules:
            proto = rule.protocol.value
            table.add(chain, f"-p {proto} -m {proto} --dport {rule.public_ports.match()} "
                             f"-j DNAT --to-destination {_dnat_target(rule)}")
    for nat in state.static_nats:
        table.add(dnat, f"-d {host(nat.public_ip)} -j DNAT --to-destination {nat.internal_ip}")

    guests = state.all_guest_networks() if not routed.is_routed(state) else ()  # routed: nothing DNAT'ed
    for guest in guests:
        # Hairpin: a guest reaching another guest through a public IP must see the reply
        # come back through the router, so the source becomes the router's guest address.
        table.add(snat, f"-s {net(guest.network)} -d {net(guest.network)} -o {guest.device} "
                        f"-m conntrack --ctstate DNAT -j SNAT --to-source {guest.router_ip}")
    devices = {p.ip: p.device for p in state.ordered_public_ips()}
    for nat in state.static_nats:
        device = devices.get(nat.public_ip)
        if device:
            table.add(snat, f"-s {host(nat.internal_ip)} -o {device} -j SNAT --to-source {nat.public_ip}")
    from vragent.render import netfilter_vpc

    for device in state.public_devices() if not routed.is_routed(state) else ():  # routed: no NAT
        # A VPC SNATs every public NIC but its first to the VPC's one source-NAT IP.
        source = netfilter_vpc.source_nat_address(state, device) if state.is_vpc else state.source_nat_ip(device)
        if source is not None:
            table.add(snat, f"-o {device} -j SNAT --to-source {source}")
    if state.private_gateways:  # a VPC's: render/netfilter_vpc.py
        from vragent.render import netfilter_vpc

        netfilter_vpc.private_gateway_snat(state, table)


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
