"""An isolated router's firewall and NAT: the usage counters, vr-FORWARD and vr-egress, the
per-public-IP ingress firewall (mangle vr-fw-<ip>), port forwarding, static NAT and source
NAT (pure). A VPC's forward path and ACLs are the vpc subsystem's."""

from __future__ import annotations

from ipaddress import IPv4Address

from vragent.model import PUBLIC_DEVICE, Direction, FirewallRule, PortForward, RouterState
from vragent.tables import ESTABLISHED, STATS_CHAIN, TableSpec, host, join, match_protocol, net, text


def usage_counters(state: RouterState, table: TableSpec) -> None:
    """Rules without a target, only counted: the order is the billing format (sent,
    received, router-sent TCP, router-received TCP), so it must never change."""
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


def forward_head(state: RouterState, table: TableSpec) -> None:
    """vr-FORWARD (policy DROP) of an isolated router: established, DNAT'ed, guests to vr-egress."""
    table.policies["FORWARD"] = "DROP"
    table.jump("FORWARD", "-j vr-FORWARD")
    chain = "vr-FORWARD"
    table.add(chain, f"{ESTABLISHED} -j ACCEPT")
    # Connections DNAT'ed by port forwarding or static NAT passed the ingress firewall in mangle.
    table.add(chain, "-m conntrack --ctstate DNAT -j ACCEPT")
    public_devices = state.public_devices()
    for guest in state.all_guest_networks():
        for device in public_devices:
            table.add(chain, f"-i {guest.device} -o {device} -j vr-egress")


def egress(state: RouterState, table: TableSpec) -> None:
    """vr-egress: the egress rules, then the offering's default."""
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
    return [join(s, d, proto) for s in sources for d in destinations]


def ingress(state: RouterState, table: TableSpec) -> None:
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
            for opening in vpn.public_openings():
                table.add(fw, f"{opening} -j RETURN")
        for rule in ingress.get(pip.ip, []):
            for spec in _rule_specs(rule):
                table.add(fw, f"{spec} -j RETURN")
        table.add(fw, "-j DROP")


def _dnat_target(rule: PortForward) -> str:
    target = f"{text(rule.internal_ip)}:{rule.internal_ports.first}"
    if rule.internal_ports.size > 1:
        target += f"-{rule.internal_ports.last}"
        if rule.internal_ports.first != rule.public_ports.first:
            # Shifted ranges map port to port (1020:1030 -> 20-30/1020), not to any port of the range.
            target += f"/{rule.public_ports.first}"
    return target


def nat(state: RouterState, table: TableSpec, source_nat_address=None) -> None:
    """vr-dnat (port forwards per public IP, static NAT) and vr-snat (hairpin, static NAT, source
    NAT to `source_nat_address(state, device)`, by default the NIC's own source-NAT IP)."""
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

    guests = state.all_guest_networks()
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
    for device in state.public_devices():
        # A VPC SNATs every public NIC but its first to the VPC's one source-NAT IP.
        source = source_nat_address(state, device) if source_nat_address else state.source_nat_ip(device)
        if source is not None:
            table.add(snat, f"-o {device} -j SNAT --to-source {source}")
